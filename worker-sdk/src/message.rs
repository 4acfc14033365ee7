//! [`Message`]: what one worker sent another, through the supervisor.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::protocol::{decode_payload, MessageKind, MessageMeta};
use crate::Error;

/// A message from another worker (the seed's `{meta, data}`), given to the
/// [`Worker::on_public`](crate::Worker::on_public),
/// [`on_group`](crate::Worker::on_group) and
/// [`on_private`](crate::Worker::on_private) handlers.
///
/// ```no_run
/// # fn f(worker: &nanny_worker::Worker) {
/// worker.on_public(|msg| {
///     let from = msg.meta();
///     if let Ok(text) = msg.data::<String>() {
///         println!("{} (pid {}, pool {}) says {text}", from.name, from.pid, from.pool);
///     }
/// });
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    kind: MessageKind,
    meta: MessageMeta,
    data: Bytes,
}

impl Message {
    pub(crate) fn new(kind: MessageKind, meta: MessageMeta, data: Vec<u8>) -> Self {
        Self {
            kind,
            meta,
            data: Bytes::from(data),
        }
    }

    /// How it was addressed: public, to the group, or private.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Who sent it: id, name, pid and pool, as the supervisor knows them.
    pub fn meta(&self) -> &MessageMeta {
        &self.meta
    }

    /// Decodes the data (MessagePack) into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(decode_payload(&self.data)?)
    }

    /// The raw data bytes.
    pub fn raw(&self) -> &[u8] {
        &self.data
    }
}
