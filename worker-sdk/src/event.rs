//! [`Event`]: a broadcast from the supervisor.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::protocol::decode_payload;
use crate::Error;

/// A broadcast event from the supervisor, given to
/// [`Worker::on_broadcast`](crate::Worker::on_broadcast) handlers.
#[derive(Debug, Clone)]
pub struct Event {
    name: String,
    payload: Bytes,
}

impl Event {
    pub(crate) fn new(name: String, payload: Vec<u8>) -> Self {
        Self {
            name,
            payload: Bytes::from(payload),
        }
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes the payload (MessagePack) into `T`. A `nil` payload decodes
    /// as `()` or `None`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(decode_payload(&self.payload)?)
    }

    /// The raw payload bytes.
    pub fn raw(&self) -> &[u8] {
        &self.payload
    }
}
