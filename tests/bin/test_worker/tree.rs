//! The `descendants` mode: a worker that starts processes of its own, in
//! the three ways that outlive a worker without containment, then serves
//! (`normal`). Each is a `sleep` whose argument carries `TEST_TREE_MARK`,
//! so a test finds them in `/proc` (see `tests/integration/descendants.rs`):
//!
//! * `1000.<mark>1`: a child in the worker's process group;
//! * `1000.<mark>2`: a child that left the group (`setsid`);
//! * `1000.<mark>3`: a grandchild whose parent (`sh`) exited at once, as a
//!   daemon's double fork leaves it.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

use crate::serve::serve;

pub(crate) async fn descendants() -> ExitCode {
    let mark = std::env::var("TEST_TREE_MARK").expect("TEST_TREE_MARK");
    let arg = |n: u32| format!("1000.{mark}{n}");
    let quiet = |c: &mut Command| {
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    };
    let mut child = Command::new("sleep");
    child.arg(arg(1));
    quiet(&mut child);
    let mut left = Command::new("sleep");
    left.arg(arg(2));
    quiet(&mut left);
    #[allow(unsafe_code)]
    // SAFETY: setsid is async-signal-safe; nothing else runs in the fork.
    unsafe {
        left.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    let mut daemon = Command::new("sh");
    daemon.args(["-c", &format!("sleep {} & exit 0", arg(3))]);
    quiet(&mut daemon);
    // The two children run until the end; kept, never waited for (they
    // never end first: whoever stops them reaps them).
    let kept: Vec<std::process::Child> = [child, left]
        .iter_mut()
        .map(|c| c.spawn().expect("start a child"))
        .collect();
    daemon.status().expect("run sh");
    let code = serve().await;
    drop(kept);
    code
}
