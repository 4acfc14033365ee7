//! What the bench's load costs Redis, in commands per request.
//!
//! * [`Tally`]: `INFO commandstats` before and after a load; the
//!   difference, per command, divided by the requests. These counts
//!   include the commands a Lua script runs (`XPENDING`, `XACK`, … inside
//!   `EVALSHA`), as `total_commands_processed` does: the server's work.
//! * [`Monitor`]: a `redis-cli monitor` child for one short load, whose
//!   lines tell the commands that clients sent (each a request on the
//!   socket; pipelined ones share a round trip) from those that scripts
//!   ran (`[0 lua]`). Monitoring slows the server, so this load is never
//!   timed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `INFO commandstats` as command → (calls, µs spent in them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally(pub(crate) BTreeMap<String, (u64, u64)>);

impl Tally {
    /// The server's counts now.
    pub(crate) fn now(conn: &mut redis::Connection) -> Tally {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(conn)
            .expect("INFO commandstats");
        Tally(
            info.lines()
                .filter_map(|l| {
                    let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                    let mut fields = rest.split(',');
                    let calls = fields.next()?.strip_prefix("calls=")?.parse().ok()?;
                    let usec = fields.next()?.strip_prefix("usec=")?.parse().ok()?;
                    Some((name.to_owned(), (calls, usec)))
                })
                .collect(),
        )
    }

    /// What ran since `before`, without the `INFO` calls themselves.
    pub(crate) fn since(&self, before: &Tally) -> Tally {
        let diff = self
            .0
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, &(n, us))| {
                let (n0, us0) = before.0.get(name).copied().unwrap_or_default();
                (name.clone(), (n - n0, us - us0))
            })
            .filter(|&(_, (n, _))| n > 0)
            .collect();
        Tally(diff)
    }

    /// Every command counted.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().map(|&(n, _)| n).sum()
    }

    /// `name=calls/request (µs/request in it) …`, the most called first.
    /// A script's time includes the commands it runs, which are also
    /// counted on their own.
    pub(crate) fn per_request(&self, requests: usize) -> String {
        let mut by: Vec<(&String, &(u64, u64))> = self.0.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1));
        let per = |x: u64| x as f64 / requests as f64;
        by.iter()
            .map(|(name, &(n, us))| format!("{name}={:.2} ({:.2} µs)", per(n), per(us)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A `redis-cli monitor` of the server on `socket`.
#[derive(Debug)]
pub(crate) struct Monitor {
    child: Child,
    reader: std::thread::JoinHandle<(u64, u64)>,
}

impl Monitor {
    /// Starts monitoring; returns once the monitor is attached.
    pub(crate) fn start(socket: &Path) -> Monitor {
        let mut child = Command::new("redis-cli")
            .arg("-s")
            .arg(socket)
            .arg("monitor")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run redis-cli monitor (Debian's redis-tools)");
        let mut out = BufReader::new(child.stdout.take().expect("its stdout"));
        let mut first = String::new();
        out.read_line(&mut first).expect("redis-cli monitor says OK");
        let reader = std::thread::spawn(move || count(out));
        Monitor { child, reader }
    }

    /// Stops the monitor (SIGKILL to its pid); gives (commands from
    /// clients, commands from scripts).
    pub(crate) fn stop(mut self) -> (u64, u64) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reader.join().expect("the monitor's reader")
    }
}

/// Counts monitor lines, `[0 lua]` ones apart.
fn count(out: impl BufRead) -> (u64, u64) {
    let (mut clients, mut scripts) = (0, 0);
    for line in out.lines().map_while(Result::ok) {
        if line.contains(" [0 lua] ") {
            scripts += 1;
        } else if !line.contains("\"info\"") {
            clients += 1;
        }
    }
    (clients, scripts)
}
