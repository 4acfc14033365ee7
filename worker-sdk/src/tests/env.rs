//! Reading the environment and claiming the inherited socket.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::env::{claim_fd, claim_fd_channel, fd_channel_from_vars, Settings};
use crate::protocol::*;
use crate::Error;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    move |var| map.get(var).cloned()
}

const FULL: &[(&str, &str)] = &[
    (ENV_FD, "3"),
    (ENV_WORKER_ID, "12"),
    (ENV_POOL, "images"),
    (ENV_SUPERVISOR_PID, "99"),
    (ENV_WORKER_NAME, "images:02"),
    (ENV_LOGICAL_ID, "1"),
    (ENV_PULSE_MS, "250"),
    (ENV_MAX_FRAME_LEN, "65536"),
];

fn with(changes: &[(&'static str, Option<&'static str>)]) -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = FULL.to_vec();
    for &(var, value) in changes {
        all.retain(|(k, _)| *k != var);
        if let Some(v) = value {
            all.push((var, v));
        }
    }
    all
}

#[test]
fn a_full_environment_parses() {
    let (fd, s) = Settings::from_vars(vars(FULL)).unwrap();
    assert_eq!(fd, 3);
    assert_eq!(
        (s.worker_id, s.pool.as_str(), s.supervisor_pid, s.logical_id),
        (12, "images", 99, 1)
    );
    assert_eq!((s.pulse.as_millis(), s.max_frame_len), (250, 65536));
    assert_eq!(s.name.as_deref(), Some("images:02"));
}

#[test]
fn the_worker_name_is_optional() {
    let env = with(&[(ENV_WORKER_NAME, None)]);
    let (_, s) = Settings::from_vars(vars(&env)).unwrap();
    assert_eq!(s.name, None);
}

#[test]
fn pulse_and_frame_length_have_defaults() {
    let env = with(&[(ENV_PULSE_MS, None), (ENV_MAX_FRAME_LEN, None)]);
    let (_, s) = Settings::from_vars(vars(&env)).unwrap();
    assert_eq!(
        (s.pulse.as_millis(), s.max_frame_len),
        (1000, DEFAULT_MAX_FRAME_LEN)
    );
}

#[test]
fn missing_fd_means_not_a_worker() {
    let env = with(&[(ENV_FD, None)]);
    assert!(matches!(Settings::from_vars(vars(&env)), Err(Error::NotAWorker)));
}

#[test]
fn bad_or_missing_variables_name_the_variable() {
    for (var, value) in [
        (ENV_FD, Some("three")),
        (ENV_FD, Some("-1")),
        (ENV_WORKER_ID, None),
        (ENV_WORKER_ID, Some("x")),
        (ENV_POOL, None),
        (ENV_SUPERVISOR_PID, Some("-5")),
        (ENV_LOGICAL_ID, None),
        (ENV_PULSE_MS, Some("0")),
        (ENV_MAX_FRAME_LEN, Some("big")),
    ] {
        let env = with(&[(var, value)]);
        match Settings::from_vars(vars(&env)) {
            Err(Error::Env { var: got, reason }) => assert_eq!(got, var, "{reason}"),
            other => panic!("{var}={value:?}: expected an env error, got {other:?}"),
        }
    }
}

/// One test for all claims: a successful claim is once per process.
#[test]
fn claiming_the_inherited_fd() {
    // Not a socket: refused, and the fd is left open (it is not ours).
    let (r, _w) = nix::unistd::pipe().unwrap();
    let raw = r.as_raw_fd();
    assert!(matches!(claim_fd(raw), Err(Error::Env { var: ENV_FD, .. })));
    assert!(fcntl(&r, FcntlArg::F_GETFD).is_ok(), "still open");

    // A stream socket without close-on-exec: claimed, and marked close-on-exec.
    let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd: OwnedFd = ours.into();
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let raw = fd.into_raw_fd();
    let stream = claim_fd(raw).unwrap();
    assert_eq!(stream.as_raw_fd(), raw);
    let flags = FdFlag::from_bits_truncate(fcntl(&stream, FcntlArg::F_GETFD).unwrap());
    assert!(flags.contains(FdFlag::FD_CLOEXEC));

    // A second claim is refused.
    assert!(matches!(claim_fd(raw), Err(Error::Env { var: ENV_FD, .. })));
}

#[test]
fn the_fd_channel_variable_is_optional() {
    assert_eq!(fd_channel_from_vars(vars(FULL)).unwrap(), None);
    let env = with(&[(ENV_FD_CHANNEL, Some("4"))]);
    assert_eq!(fd_channel_from_vars(vars(&env)).unwrap(), Some(4));
    for bad in ["four", "-1"] {
        let env = with(&[(ENV_FD_CHANNEL, Some(bad))]);
        match fd_channel_from_vars(vars(&env)) {
            Err(Error::Env { var, .. }) => assert_eq!(var, ENV_FD_CHANNEL),
            other => panic!("{bad}: expected an env error, got {other:?}"),
        }
    }
}

/// One test for all claims of the fd channel: a successful claim is once per process.
#[test]
fn claiming_the_inherited_fd_channel() {
    // A stream socket is not an fd channel: refused, and left open.
    let (stream, _other) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = claim_fd_channel(stream.as_raw_fd()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Env {
                var: ENV_FD_CHANNEL,
                ..
            }
        ),
        "{err}"
    );
    assert!(fcntl(&stream, FcntlArg::F_GETFD).is_ok(), "still open");

    // A SOCK_SEQPACKET socket without close-on-exec: claimed, and marked close-on-exec.
    let (ours, _theirs) = crate::fdpass::FdChannel::pair().unwrap();
    fcntl(&ours, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let raw = ours.into_raw_fd();
    let owned = claim_fd_channel(raw).unwrap();
    assert_eq!(owned.as_raw_fd(), raw);
    let flags = FdFlag::from_bits_truncate(fcntl(&owned, FcntlArg::F_GETFD).unwrap());
    assert!(flags.contains(FdFlag::FD_CLOEXEC));

    // A second claim is refused.
    assert!(matches!(
        claim_fd_channel(raw),
        Err(Error::Env {
            var: ENV_FD_CHANNEL,
            ..
        })
    ));
}
