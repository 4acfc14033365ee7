//! The Redis keys of one namespace. Every key carries the hash tag
//! `{nanny:<ns>}`, so a namespace lives in one Cluster slot, as its Lua
//! scripts need.
//!
//! | key | type | what |
//! |---|---|---|
//! | `{nanny:<ns>}:req:<pool>` | stream + group [`GROUP`] | a pool's requests, never trimmed |
//! | `{nanny:<ns>}:reply:<consumer>` | stream, capped, expiring | one caller incarnation's replies |
//! | `{nanny:<ns>}:cancel:<rid>` | string, `PX` | the caller cancelled |

/// The consumer group of every request stream.
pub(crate) const GROUP: &str = "workers";

/// The key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{nanny:<ns>}`.
    prefix: String,
}

impl Keys {
    /// The keys of `namespace`.
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            prefix: format!("{{nanny:{namespace}}}"),
        }
    }

    /// `pool`'s request stream.
    pub(crate) fn requests(&self, pool: &str) -> String {
        format!("{}:req:{pool}", self.prefix)
    }

    /// The reply stream of caller `consumer`.
    pub(crate) fn replies(&self, consumer: &str) -> String {
        format!("{}:reply:{consumer}", self.prefix)
    }

    /// Whether `key` is a reply stream of this namespace: an entry's
    /// reply-to is taken as a key only then.
    pub(crate) fn is_replies(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix(":reply:"))
            .is_some_and(|consumer| !consumer.is_empty())
    }

    /// The cancellation flag of request `rid`.
    pub(crate) fn cancel(&self, rid: &str) -> String {
        format!("{}:cancel:{rid}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn every_key_has_the_namespace_hash_tag() {
        let k = Keys::new("ns");
        assert_eq!(k.requests("default"), "{nanny:ns}:req:default");
        assert_eq!(k.replies("a-1-2"), "{nanny:ns}:reply:a-1-2");
        assert_eq!(k.cancel("r"), "{nanny:ns}:cancel:r");
        assert!(k.is_replies("{nanny:ns}:reply:a-1-2"));
        assert!(!k.is_replies("{nanny:other}:reply:a") && !k.is_replies("{nanny:ns}:reply:"));
        assert!(!k.is_replies("{nanny:ns}:req:default"));
    }
}
