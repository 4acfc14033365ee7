//! What a Rust team would build by hand today: a tonic gRPC echo service in
//! each worker process, over a Unix domain socket, and client-side round
//! robin over one channel per worker. The bench process binds each
//! worker's socket and hands the listener over as the worker's standard
//! input, so a client may connect before the worker accepts.

use std::os::unix::net::UnixListener as StdListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint, Server, Uri};

use crate::bare_tokio::on;
use crate::children::{inherited_socket, Worker};
use crate::report::Burst;
use crate::workloads::{steady, SMALL, WARM_UP};

/// The generated service and message.
mod pb {
    tonic::include_proto!("echo");
}

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::Payload;

/// The tonic peer.
#[derive(Debug)]
pub struct Tonic {
    rt: Runtime,
    dir: PathBuf,
    workers: Vec<(Worker, EchoClient<Channel>)>,
    spawned: usize,
}

#[derive(Debug)]
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, req: tonic::Request<Payload>) -> Result<tonic::Response<Payload>, tonic::Status> {
        Ok(tonic::Response::new(req.into_inner()))
    }
}

/// The worker side: serve the echo service on the inherited listener, on a
/// current-thread runtime.
pub fn serve_worker() -> std::io::Result<()> {
    let listener = StdListener::from(inherited_socket()?);
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let incoming =
            tokio_stream::wrappers::UnixListenerStream::new(tokio::net::UnixListener::from_std(listener)?);
        Server::builder()
            .add_service(EchoServer::new(EchoService))
            .serve_with_incoming(incoming)
            .await
            .map_err(std::io::Error::other)
    })
}

/// One echo call, its answer checked.
async fn call(client: &mut EchoClient<Channel>, payload: &bytes::Bytes) {
    let answer = client
        .echo(Payload {
            data: payload.clone(),
        })
        .await
        .expect("an answer");
    assert_eq!(
        answer.get_ref().data.len(),
        payload.len(),
        "the answer is the echo"
    );
}

impl Tonic {
    /// A new worker on a new socket, and a channel to it.
    fn spawn(&mut self) -> (Worker, EchoClient<Channel>) {
        let path = self.dir.join(format!("w{}.sock", self.spawned));
        self.spawned += 1;
        let listener = StdListener::bind(&path).expect("bind the worker's socket");
        let worker = Worker::spawn("tonic", listener).expect("spawn a tonic worker");
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        });
        let channel = on(&self.rt, async move {
            let endpoint = Endpoint::try_from("http://[::]:50051").expect("endpoint");
            endpoint.connect_with_connector(connector).await.expect("connect")
        });
        (worker, EchoClient::new(channel))
    }

    fn clients(&self) -> Vec<EchoClient<Channel>> {
        self.workers.iter().map(|(_, c)| c.clone()).collect()
    }
}

impl crate::workloads::Peer for Tonic {
    fn start(workers: usize) -> Self {
        let rt = crate::workloads::runtime(false);
        let dir = std::env::temp_dir().join(format!("nanny-peers-tonic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("socket dir");
        let mut peer = Self {
            rt,
            dir,
            workers: Vec::new(),
            spawned: 0,
        };
        let spawned = (0..workers).map(|_| peer.spawn()).collect();
        peer.workers = spawned;
        let clients = peer.clients();
        on(&peer.rt, async move {
            let payload = bytes::Bytes::from(vec![7u8; SMALL]);
            let calls = clients.into_iter().map(|mut c| {
                let payload = payload.clone();
                async move { call(&mut c, &payload).await }
            });
            futures::future::join_all(calls).await;
        });
        peer
    }

    fn round_trips(&mut self, run_for: Duration) -> Vec<Duration> {
        let mut clients = self.clients();
        on(&self.rt, async move {
            let (payload, n) = (bytes::Bytes::from(vec![7u8; SMALL]), clients.len());
            for i in 0..WARM_UP {
                call(&mut clients[i % n], &payload).await;
            }
            let (start, mut each) = (Instant::now(), Vec::with_capacity(100_000));
            for i in 0.. {
                if start.elapsed() >= run_for {
                    break;
                }
                let t = Instant::now();
                call(&mut clients[i % n], &payload).await;
                each.push(t.elapsed());
            }
            each
        })
    }

    fn burst(&mut self, size: usize, run_for: Duration) -> Burst {
        let clients = self.clients();
        on(&self.rt, async move {
            let (payload, n) = (bytes::Bytes::from(vec![7u8; size]), clients.len());
            steady(run_for, |i| {
                let (mut client, payload) = (clients[i % n].clone(), payload.clone());
                async move {
                    call(&mut client, &payload).await;
                    i % n
                }
            })
            .await
        })
    }

    fn kill_one(&mut self) {
        let (old, _) = self.workers.remove(0);
        old.kill().expect("SIGKILL and reap");
        let (worker, mut client) = self.spawn();
        client = on(&self.rt, async move {
            call(&mut client, &bytes::Bytes::from(vec![7u8; SMALL])).await;
            client
        });
        self.workers.insert(0, (worker, client));
    }

    fn worker_pids(&mut self) -> Vec<u32> {
        self.workers.iter().map(|(w, _)| w.pid()).collect()
    }

    fn stop(self) {
        drop(self.workers);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
