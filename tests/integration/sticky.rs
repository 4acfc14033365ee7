//! Sticky routing (issue 11): a keyed request goes to its key's owner by
//! rendezvous hashing over slot names, waits for it without holding up
//! others, moves when it dies, comes back to its slot's replacement and
//! follows a make-before-break successor; connections of a
//! `sticky_by_peer_ip` listener land on their IP's owner.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nanny::{ConfigError, EnqueueOptions, Listener, Pool, StartError, Supervisor, WorkerState};

use crate::support::conns::*;
use crate::support::*;

/// `cmd` with sticky key `key`; panics on error.
async fn keyed(sup: &Supervisor, key: &str, cmd: &Cmd) -> Whoami {
    let resp = sup
        .enqueue_with(cmd, EnqueueOptions::new().key(key))
        .await
        .unwrap_or_else(|e| panic!("{cmd:?} keyed {key:?} failed: {e}"));
    resp.data().expect("a Whoami answer")
}

/// The pool's slot names, in order.
fn names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("default:{i:02}")).collect()
}

/// The slot owning `key` among `slots`, by the public rule.
fn owner(key: &[u8], slots: &[String]) -> String {
    nanny::sticky::owner(key, slots.iter().map(String::as_str))
        .expect("some slot")
        .to_owned()
}

/// A key, of the form `key-N`, that `slot` owns among `slots`.
fn key_of(slot: &str, slots: &[String]) -> String {
    (0..)
        .map(|n| format!("key-{n}"))
        .find(|k| owner(k.as_bytes(), slots) == slot)
        .expect("some key")
}

/// The name of the worker with id `id`.
async fn name_of(sup: &Supervisor, id: u64) -> String {
    health(sup)
        .await
        .into_iter()
        .find(|w| w.id.get() == id)
        .map(|w| w.name)
        .unwrap_or_else(|| panic!("no worker {id}"))
}

#[tokio::test]
async fn the_same_key_goes_to_the_same_worker_its_owner_by_slot_name() {
    guard(async {
        let sup = start(3).await;
        let slots = names(3);
        let mut used = BTreeSet::new();
        for k in 0..20 {
            let key = format!("session-{k}");
            let first = keyed(&sup, &key, &Cmd::Whoami).await;
            assert_eq!(
                name_of(&sup, first.worker_id).await,
                owner(key.as_bytes(), &slots),
                "{key} goes to its owner by the documented rule"
            );
            for _ in 0..4 {
                let again = keyed(&sup, &key, &Cmd::Whoami).await;
                assert_eq!(again.worker_id, first.worker_id, "{key} stays put");
            }
            used.insert(first.worker_id);
        }
        assert_eq!(used.len(), 3, "twenty keys spread over the three workers");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_waits_for_its_busy_worker_without_holding_up_other_keys_or_unkeyed_requests() {
    guard(async {
        let sup = capped(2, 1).start().await.expect("start");
        all_ready(&sup, 2).await;
        let slots = names(2);
        let (mine, other) = (key_of("default:01", &slots), key_of("default:02", &slots));
        let spawn_keyed = |key: String, cmd: Cmd| {
            let sup = sup.clone();
            tokio::spawn(async move { keyed(&sup, &key, &cmd).await })
        };
        // Its worker is at its concurrency, held at a gate…
        let held = spawn_keyed(mine.clone(), Cmd::Gate("held".into()));
        load(&sup, 1, 0).await;
        // …so the next request of that key waits for it.
        let waiting = spawn_keyed(mine.clone(), Cmd::Whoami);
        load(&sup, 1, 1).await;
        // Meanwhile the other key and unkeyed requests are served, by the other worker.
        let by_other = keyed(&sup, &other, &Cmd::Whoami).await;
        assert_eq!(name_of(&sup, by_other.worker_id).await, "default:02");
        for _ in 0..5 {
            let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
            assert_eq!(me.worker_id, by_other.worker_id, "the free worker serves");
        }
        assert!(
            !waiting.is_finished(),
            "the keyed request still waits for its worker"
        );
        assert_eq!(stats(&sup).await.queued, 1, "and counts as queued");
        release(&sup, "held").await;
        let held = within("the gated request", held).await.expect("task");
        let waited = within("the waiting request", waiting).await.expect("task");
        assert_eq!(
            waited.worker_id, held.worker_id,
            "served by its own worker, after the gate"
        );
        assert_eq!(name_of(&sup, waited.worker_id).await, "default:01");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_moves_when_its_worker_dies_and_returns_to_its_slots_replacement_once_ready() {
    guard(async {
        // Every worker says ready on a "go" broadcast: the replacement of
        // the killed one stays starting until the test says so.
        let spec = worker_spec("normal").env("TEST_READY_ON", "go");
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(spec).workers(3))
            .spawn()
            .expect("spawn");
        let go = || async {
            sup.broadcast("go", &()).await.expect("broadcast");
        };
        wait_until("three ready workers", || async {
            go().await;
            let h = health(&sup).await;
            h.len() == 3 && h.iter().all(|w| w.state == WorkerState::Ready)
        })
        .await;
        let slots = names(3);
        let key = key_of("default:02", &slots);
        // Its worker says busy: the next request of the key waits for it.
        let before = keyed(&sup, &key, &Cmd::Busy).await;
        assert_eq!(name_of(&sup, before.worker_id).await, "default:02");
        wait_until("its worker is busy", || async {
            health(&sup)
                .await
                .iter()
                .any(|w| w.pid == before.pid && w.state == WorkerState::Busy)
        })
        .await;
        let waiting = {
            let (sup, key) = (sup.clone(), key.clone());
            tokio::spawn(async move { keyed(&sup, &key, &Cmd::Whoami).await })
        };
        load(&sup, 0, 1).await;

        // It dies: what waited goes to the key's next owner, the slot that
        // scores second among the other two, while the slot's replacement
        // is still starting (it cannot be ready before the test says go).
        sigkill(before.pid);
        let moved = within("the waiting request", waiting).await.expect("task");
        let rest: Vec<String> = slots.iter().filter(|s| *s != "default:02").cloned().collect();
        assert_eq!(name_of(&sup, moved.worker_id).await, owner(key.as_bytes(), &rest));
        assert!(
            health(&sup)
                .await
                .iter()
                .all(|w| w.name != "default:02" || w.state != WorkerState::Ready),
            "served before the replacement was ready"
        );
        for _ in 0..5 {
            assert_eq!(
                keyed(&sup, &key, &Cmd::Whoami).await.worker_id,
                moved.worker_id,
                "stays there"
            );
        }

        wait_until("the replacement is ready", || async {
            go().await;
            health(&sup)
                .await
                .iter()
                .any(|w| w.name == "default:02" && w.pid != before.pid && w.state == WorkerState::Ready)
        })
        .await;
        let back = keyed(&sup, &key, &Cmd::Whoami).await;
        assert_eq!(
            name_of(&sup, back.worker_id).await,
            "default:02",
            "back to its slot"
        );
        assert_ne!(back.pid, before.pid, "in the replacement");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_follows_a_restarted_worker_to_its_successor_without_an_error() {
    guard(async {
        let sup = start(2).await;
        let slots = names(2);
        let key = key_of("default:01", &slots);
        let old = keyed(&sup, &key, &Cmd::Whoami).await;
        assert_eq!(name_of(&sup, old.worker_id).await, "default:01");
        let restart = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.restart_worker("default:01").await })
        };
        // Requests of the key keep going through the replacement: each is
        // answered by the slot's old worker until its successor is ready,
        // then by the successor only.
        let mut seen_new = None;
        while !restart.is_finished() || seen_new.is_none() {
            let me = keyed(&sup, &key, &Cmd::Whoami).await;
            if me.worker_id == old.worker_id {
                assert!(
                    seen_new.is_none(),
                    "back to the old worker after the successor served"
                );
            } else {
                assert_eq!(
                    name_of(&sup, me.worker_id).await,
                    "default:01",
                    "only the slot's workers serve its key"
                );
                assert!(seen_new.is_none_or(|id| id == me.worker_id));
                seen_new = Some(me.worker_id);
            }
        }
        let new = within("restart_worker", restart)
            .await
            .expect("task")
            .expect("restarted");
        assert_eq!(seen_new, Some(new.get()), "the successor took the key");
        let after = keyed(&sup, &key, &Cmd::Whoami).await;
        assert_eq!((after.worker_id, after.logical_id), (new.get(), old.logical_id));
        assert_ne!(after.pid, old.pid);
        sup.soft_kill().await;
    })
    .await;
}

/// Connects to `addr` from `ip` (a loopback address) and returns the
/// worker that echoed one line.
async fn served_from(ip: Ipv4Addr, addr: SocketAddr, line: &str) -> u64 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .expect("bind a loopback source");
    let stream = socket.connect(addr).await.expect("connect");
    Client::from_std(stream.into_std().expect("std")).ask(line).await
}

#[tokio::test]
async fn connections_from_one_ip_land_on_its_owner_and_fall_to_the_next_while_it_is_busy() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(worker_spec("conn-echo")).workers(3))
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).sticky_by_peer_ip())
            .start()
            .await
            .expect("start");
        all_listening(&sup, 3).await;
        assert!(sup.inspect().await.unwrap().listeners[0].sticky_by_peer_ip);
        let addr = listener_addr(&sup).await;
        let slots = names(3);
        // Sixteen source addresses: each one's connections all go to its
        // owner, and between them they reach every worker.
        let mut used = BTreeSet::new();
        for last in 1..=16u8 {
            let ip = Ipv4Addr::new(127, 0, 0, last);
            let first = served_from(ip, addr, "hello").await;
            assert_eq!(name_of(&sup, first).await, owner(&ip.octets(), &slots), "{ip}");
            for i in 0..3 {
                assert_eq!(served_from(ip, addr, &i.to_string()).await, first, "{ip} sticks");
            }
            used.insert(first);
        }
        assert_eq!(used.len(), 3);

        // A request keyed by the same octets names the same owner: make it busy.
        let ip = Ipv4Addr::LOCALHOST;
        let owner_id = served_from(ip, addr, "x").await;
        let busy = sup
            .enqueue_with(&Cmd::Busy, EnqueueOptions::new().key(ip.octets()))
            .await
            .expect("busy");
        assert_eq!(busy.worker().get(), owner_id, "requests and connections agree");
        wait_until("the owner is busy", || async {
            health(&sup)
                .await
                .iter()
                .any(|w| w.id.get() == owner_id && w.state == WorkerState::Busy)
        })
        .await;
        // Its connections fall to the next owner by the same rule, and stay there.
        let owner_name = name_of(&sup, owner_id).await;
        let rest: Vec<String> = slots.iter().filter(|s| **s != owner_name).cloned().collect();
        let next = served_from(ip, addr, "y").await;
        assert_eq!(name_of(&sup, next).await, owner(&ip.octets(), &rest));
        for i in 0..3 {
            assert_eq!(served_from(ip, addr, &i.to_string()).await, next);
        }
        // Ready again: back to the owner.
        sup.broadcast(SET_READY, &()).await.expect("broadcast");
        wait_until("the owner is ready", || async {
            health(&sup)
                .await
                .iter()
                .any(|w| w.id.get() == owner_id && w.state == WorkerState::Ready)
        })
        .await;
        assert_eq!(served_from(ip, addr, "z").await, owner_id);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_sticky_listener_needs_a_tcp_round_robin_socket() {
    guard(async {
        // Refused before anything is bound: the path is never created.
        let listeners = [
            Listener::unix("/nonexistent/nanny-sticky.sock").sticky_by_peer_ip(),
            Listener::tcp(([127, 0, 0, 1], 0))
                .socket_activation()
                .sticky_by_peer_ip(),
        ];
        for l in listeners {
            let name = l.display_name();
            match builder(1).listen(l).spawn() {
                Err(StartError::Config(ConfigError::StickyListener { listener, .. })) => {
                    assert_eq!(listener, name)
                }
                other => panic!("{name}: expected StickyListener, got {:?}", other.err()),
            }
        }
    })
    .await;
}
