//! Worker processes of the raw, bare-tokio and tonic peers: this same
//! binary, started as `nanny-peers --serve ROLE` with its socket (a
//! connected stream or a listener) as standard input. The bench process is
//! their supervisor: it starts them, SIGKILLs one, reaps it, starts another.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

/// A worker process this process started.
#[derive(Debug)]
pub struct Worker {
    child: Child,
}

impl Worker {
    /// Starts `nanny-peers --serve role` with `socket` as its standard input.
    pub fn spawn(role: &str, socket: impl Into<OwnedFd>) -> io::Result<Self> {
        let child = Command::new(std::env::current_exe()?)
            .args(["--serve", role])
            .stdin(Stdio::from(socket.into()))
            .spawn()?;
        Ok(Self { child })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs it and reaps it.
    pub fn kill(mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a worker: the socket its parent gave it as standard input.
pub fn inherited_socket() -> io::Result<OwnedFd> {
    io::stdin().as_fd().try_clone_to_owned()
}
