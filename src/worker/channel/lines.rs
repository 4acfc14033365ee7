//! The Node.js channel's lines: the one we write for each message, and
//! the reassembly of what the worker writes ([`Inbox`]): bytes into lines,
//! each received descriptor paired with the `NODE_HANDLE` line it came
//! with.
//!
//! Pairing: Linux ends a `recvmsg` on a stream socket right after the
//! bytes of a `sendmsg` that carried descriptors, and Node writes a
//! `NODE_HANDLE` line and its descriptor in one `sendmsg` and no other
//! descriptor until that one is acknowledged. So a descriptor arrives
//! with (the end of) its line, never before an earlier line is whole, and
//! the oldest unpaired descriptor belongs to the next `NODE_HANDLE` line.
//! More than [`UNPAIRED_MAX`] unpaired descriptors is a protocol error.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;

use base64::Engine;
use nanny_worker::fdpass::FdMessage;
use nanny_worker::protocol::FdTag;

/// The longest line, its newline excluded.
pub(super) const LINE_MAX: usize = 16 * 1024;

/// Descriptors received and not yet paired with their line, at most:
/// Node sends the next only after our acknowledgement of this one.
pub(super) const UNPAIRED_MAX: usize = 1;

/// What we answer every `NODE_HANDLE` line with.
pub(super) const ACK_LINE: &[u8] = b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The line that carries one message: `tag` and `data` in base64 under
/// `msg.nanny`, typed `net.Native` so that Node hands the worker the raw
/// handle (a TCP or Pipe handle).
pub(super) fn handle_line(tag: FdTag, data: &[u8]) -> Vec<u8> {
    const HEAD: &[u8] = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{\"nanny\":\"";
    const TAIL: &[u8] = b"\"}}\n";
    let mut message = Vec::with_capacity(FdTag::LEN + data.len());
    message.extend_from_slice(&tag.to_bytes());
    message.extend_from_slice(data);
    let encoded = base64::encoded_len(message.len(), true).unwrap_or(0);
    let mut line = Vec::with_capacity(HEAD.len() + encoded + TAIL.len());
    line.extend_from_slice(HEAD);
    line.extend_from_slice(B64.encode(&message).as_bytes());
    line.extend_from_slice(TAIL);
    line
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("node channel: {message}"))
}

/// What the worker wrote, reassembled.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    /// Bytes of lines not yet taken (at most one partial line after them).
    buf: Vec<u8>,
    /// How far `buf` has been searched for a newline.
    scanned: usize,
    /// Descriptors waiting for their `NODE_HANDLE` line.
    fds: VecDeque<OwnedFd>,
    /// The worker closed its end.
    pub(super) eof: bool,
    /// Acknowledgements owed: one per `NODE_HANDLE` taken.
    pub(super) owed: usize,
    /// `NODE_HANDLE_ACK`s and `NODE_HANDLE_NACK`s read.
    pub(super) acks: u64,
    pub(super) nacks: u64,
}

impl Inbox {
    /// Adds one read's bytes and descriptors.
    pub(super) fn push(&mut self, bytes: &[u8], fds: Vec<OwnedFd>) -> io::Result<()> {
        let n = fds.len();
        self.fds.extend(fds);
        if self.fds.len() > UNPAIRED_MAX {
            self.clear();
            return Err(invalid(format!(
                "{n} descriptor(s) while {UNPAIRED_MAX} had no NODE_HANDLE line yet; closed them"
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next message from the whole lines read so far; `None` until
    /// more bytes come. Counts acknowledgements; ignores other lines.
    pub(super) fn next_message(&mut self) -> io::Result<Option<FdMessage>> {
        while let Some(line) = self.next_line()? {
            match self.take(&line) {
                Ok(Some(message)) => return Ok(Some(message)),
                Ok(None) => {}
                Err(e) => {
                    self.clear();
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Closes every unpaired descriptor and drops partial lines.
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.fds.clear();
    }

    /// The next whole line, without its newline.
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = self.buf.len();
            if self.buf.len() > LINE_MAX {
                let len = self.buf.len();
                self.clear();
                return Err(invalid(format!("a line over {LINE_MAX} bytes ({len} so far)")));
            }
            return Ok(None);
        };
        let end = self.scanned + at;
        if end > LINE_MAX {
            self.clear();
            return Err(invalid(format!("a line of {end} bytes, over {LINE_MAX}")));
        }
        let line = self.buf[..end].to_vec();
        self.buf.drain(..=end);
        self.scanned = 0;
        Ok(Some(line))
    }

    /// One line: a message for a `NODE_HANDLE`, `None` for anything else.
    fn take(&mut self, line: &[u8]) -> io::Result<Option<FdMessage>> {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| invalid(format!("a line that is not JSON ({e})")))?;
        match value.get("cmd").and_then(|c| c.as_str()) {
            Some("NODE_HANDLE") => {}
            Some("NODE_HANDLE_ACK") => {
                self.acks += 1;
                return Ok(None);
            }
            Some("NODE_HANDLE_NACK") => {
                self.nacks += 1;
                return Ok(None);
            }
            _ => return Ok(None),
        }
        let fd = self
            .fds
            .pop_front()
            .ok_or_else(|| invalid("a NODE_HANDLE line without a descriptor".into()))?;
        // Owed even if the rest is malformed: the worker is then stopped anyway.
        self.owed += 1;
        let text = value
            .get("msg")
            .and_then(|m| m.get("nanny"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| invalid("a NODE_HANDLE without msg.nanny; closed its descriptor".into()))?;
        let bytes = B64
            .decode(text)
            .map_err(|e| invalid(format!("msg.nanny is not base64 ({e}); closed its descriptor")))?;
        let tag = bytes
            .get(..FdTag::LEN)
            .and_then(FdTag::from_bytes)
            .ok_or_else(|| {
                invalid(format!(
                    "msg.nanny of {} bytes, shorter than a {}-byte tag; closed its descriptor",
                    bytes.len(),
                    FdTag::LEN
                ))
            })?;
        Ok(Some(FdMessage {
            tag,
            fd,
            frame: bytes[FdTag::LEN..].to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests;
