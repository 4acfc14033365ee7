//! Connection balancing (issue 9): supervisor-owned listeners whose
//! connections go, over the fd channel, to the least recently connected
//! ready worker; bounce, backlog, kills and drains lose none.

use nanny::{Listener, Pool, Supervisor, WorkerState};

use crate::support::conns::*;
use crate::support::*;

#[tokio::test]
async fn a_thousand_connections_split_exactly_over_four_workers() {
    guard(async {
        let sup = echo_pool(4).start().await.expect("start");
        all_listening(&sup, 4).await;
        let addr = listener_addr(&sup).await;
        let mut ids = Vec::with_capacity(1000);
        for i in 0..1000 {
            ids.push(served_by(addr, &i.to_string()).await);
        }
        let shares = tally(ids);
        assert_eq!(shares.len(), 4, "{shares:?}");
        for (worker, n) in &shares {
            assert!((249..=251).contains(n), "w{worker} got {n}: {shares:?}");
        }
        // The supervisor's books agree, and every connection was closed.
        wait_until("every connection closed", || async {
            let h = health(&sup).await;
            h.iter().map(|w| w.connections.total).sum::<u64>() == 1000
                && h.iter().all(|w| w.connections.open == 0)
        })
        .await;
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.listeners[0].accepted, 1000);
        assert_eq!(info.listeners[0].waiting, 0);
        assert_eq!(
            (
                info.count_running_load_balancers(),
                info.count_active_load_balancers()
            ),
            (1, 1)
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_busy_worker_gets_no_connection() {
    guard(async {
        let sup = echo_pool(3).start().await.expect("start");
        all_listening(&sup, 3).await;
        let addr = listener_addr(&sup).await;
        sup.enqueue(&Cmd::Busy).await.expect("busy");
        let busy = eventually("a busy worker", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|w| w.state == WorkerState::Busy)
        })
        .await;
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(served_by(addr, &i.to_string()).await);
        }
        let shares = tally(ids);
        assert!(!shares.contains_key(&busy.id.get()), "{shares:?}");
        assert_eq!(shares.values().copied().collect::<Vec<_>>(), [30, 30]);
        // A drain would wait for the busy worker to say ready again.
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_draining_worker_keeps_its_connections_and_gets_no_new_ones() {
    guard(async {
        let sup = echo_pool(3).start().await.expect("start");
        let events = Events::collect(&sup);
        all_listening(&sup, 3).await;
        let addr = listener_addr(&sup).await;
        // One open connection on every worker.
        let mut held = Vec::new();
        for i in 0..3 {
            let mut c = Client::connect(addr).await;
            let w = c.ask(&format!("hold {i}")).await;
            held.push((w, c));
        }
        let resize = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.resize(nanny::DEFAULT_POOL, 2).await })
        };
        let draining = eventually("a draining worker", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|w| w.state == WorkerState::Draining)
        })
        .await;
        // New connections avoid it…
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(served_by(addr, &i.to_string()).await);
        }
        assert!(!tally(ids).contains_key(&draining.id.get()));
        // …and its own connection still works while it drains.
        let (w, mut c) = held
            .into_iter()
            .find(|(w, _)| *w == draining.id.get())
            .expect("a held connection on the draining worker");
        assert_eq!(c.ask("still there?").await, w);
        assert!(!resize.is_finished(), "the resize waits for the open connection");
        drop(c);
        within("the resize", resize)
            .await
            .expect("task")
            .expect("resized");
        let exit = exit_of(&events, draining.id).await;
        assert!(exit.expected, "a planned stop after the drain: {exit:?}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn connections_offered_to_a_sigkilled_worker_go_to_the_others() {
    guard(async {
        let sup = echo_pool(3).start().await.expect("start");
        let events = Events::collect(&sup);
        let workers = all_listening(&sup, 3).await;
        let addr = listener_addr(&sup).await;
        // A stopped worker cannot take what is offered to it.
        let victim = &workers[0];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim.pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .expect("SIGSTOP");
        let clients = spawn_clients(addr, 30, "c");
        wait_until("offers wait on the stopped worker", || async {
            health(&sup)
                .await
                .iter()
                .any(|w| w.id == victim.id && w.connections.offered > 0)
        })
        .await;
        sigkill(victim.pid);
        let served = join_all(clients).await;
        assert_eq!(served.len(), 30, "every connection opened was answered");
        assert!(served.iter().all(|&w| w != victim.id.get()), "{served:?}");
        exit_of(&events, victim.id).await;
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.listeners[0].accepted, 30);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_bounced_connection_goes_to_the_next_worker() {
    guard(async {
        // Worker 1 says it listens and gives back all it is offered.
        let spec = worker_spec("conn-bounce")
            .env("TEST_MODE_MAX_ID", "1")
            .env("TEST_MODE_ELSE", "conn-echo");
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(spec).workers(3))
            .listen(Listener::tcp(([127, 0, 0, 1], 0)))
            .start()
            .await
            .expect("start");
        all_listening(&sup, 3).await;
        let addr = listener_addr(&sup).await;
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(served_by(addr, &i.to_string()).await);
        }
        let shares = tally(ids);
        assert!(!shares.contains_key(&1), "{shares:?}");
        assert_eq!(shares.values().copied().collect::<Vec<_>>(), [10, 10]);
        let bouncer = health(&sup)
            .await
            .into_iter()
            .find(|w| w.id.get() == 1)
            .expect("w1");
        let c = bouncer.connections;
        assert_eq!((c.bounced, c.total, c.listening), (1, 0, false), "{c:?}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn connections_that_wait_for_the_pool_are_spread_over_the_workers_as_they_come_up() {
    guard(async {
        let sup = waiting_pool(4, 64);
        let addr = listener_addr(&sup).await;
        let clients = spawn_clients(addr, 40, "early");
        wait_until("40 connections wait in the backlog", || async {
            sup.inspect().await.unwrap().listeners[0].waiting == 40
        })
        .await;
        all_connected(&sup, 4).await;
        sup.broadcast("go", &()).await.unwrap();
        let shares = tally(join_all(clients).await);
        assert_eq!(shares.len(), 4, "{shares:?}");
        assert!(shares.values().all(|&n| n == 10), "{shares:?}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn the_backlog_bound_leaves_the_rest_to_the_kernel() {
    guard(async {
        let sup = waiting_pool(2, 5);
        let addr = listener_addr(&sup).await;
        let clients = spawn_clients(addr, 12, "b");
        wait_until("the backlog is full", || async {
            let l = &sup.inspect().await.unwrap().listeners[0];
            l.waiting == 5 && l.accepted == 5
        })
        .await;
        assert_eq!(sup.inspect().await.unwrap().listeners[0].backlog, 5);
        sup.broadcast("go", &()).await.unwrap();
        assert_eq!(join_all(clients).await.len(), 12, "every connection answered");
        assert_eq!(sup.inspect().await.unwrap().listeners[0].accepted, 12);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_enqueued_socket_goes_to_the_worker_handling_the_fewest_sockets() {
    guard(async {
        let sup = echo_pool(2).start().await.expect("start");
        all_listening(&sup, 2).await;
        let addr = listener_addr(&sup).await;
        // The heavy worker: by the usual rule (idle workers by RSS) it
        // would never be picked.
        let (_, heavy) = whoami_of(&sup, &Cmd::Inflate(64)).await;
        wait_until("the heavy worker's RSS is sampled", || async {
            let h = health(&sup).await;
            let rss = |me: bool| {
                h.iter()
                    .filter(|w| (w.id.get() == heavy.worker_id) == me)
                    .map(|w| w.rss_bytes)
                    .sum::<u64>()
            };
            rss(true) > rss(false) + (32 << 20)
        })
        .await;
        // Open connections: two on the light worker, one on the heavy one.
        let mut held = Vec::new();
        while held.len() < 3 {
            let mut c = Client::connect(addr).await;
            let w = c.ask("hold").await;
            let on = |me: u64| held.iter().filter(|(x, _)| *x == me).count();
            let keep = if w == heavy.worker_id {
                on(w) < 1
            } else {
                on(w) < 2
            };
            if keep {
                held.push((w, c));
            }
        }
        wait_until("the supervisor counts them", || async {
            health(&sup).await.iter().map(|w| w.connections.open).sum::<u64>() == 3
        })
        .await;
        let (_ours, socket) = unix_attachment();
        let response = sup
            .enqueue_with(&Cmd::Whoami, attach(socket))
            .await
            .expect("answer");
        let who: Whoami = response.data().unwrap();
        assert_eq!(
            who.worker_id, heavy.worker_id,
            "fewest handled sockets wins over RSS"
        );
        drop(held);
        sup.soft_kill().await;
    })
    .await;
}
