//! What a new version of the file changes, against the one in force: a
//! pure comparison of two [`Snapshot`]s (the files as TOML values, and each
//! pool's built worker spec, so that an `env_file`'s new contents count).
//!
//! Live: a pool's definition, every key of its table but those below
//! (`update_pool_config`, then a rolling reload), and its `workers`
//! (`resize`). What needs a restart of nanny is named key by key: a
//! pool's `plain` and `logical_ids` (which the library refuses to change
//! live: `ConfigError::NotLive`), pools added or removed, `[supervisor]`,
//! `[[listener]]`, `[api]`, `[queue]`.
//!
//! The log keys (a pool's `silent`, `encoding`, `log_dir`, `log_max_size`,
//! `log_max_total`, and `[supervisor]`'s defaults of the last three) are
//! not compared here: where a pool's lines go is nanny's own business,
//! compared resolved ([`crate::logs::PoolLog`]) and changed live by the
//! reload itself ([`crate::logs::Hub::reroute`]).

use toml::{Table, Value};

/// The keys of a pool's table a running pool cannot change: while one of
/// them changes, so does nothing else of the pool.
const FROZEN_KEYS: [&str; 2] = ["plain", "logical_ids"];

/// The keys of a pool's table that say where its output goes (see
/// `crate::logs`); `[supervisor]` has the last three as defaults.
const LOG_KEYS: [&str; 5] = ["silent", "encoding", "log_dir", "log_max_size", "log_max_total"];

/// Whether `key` of a pool's table changes with `update_pool_config`.
fn live(key: &str) -> bool {
    key != "workers" && !FROZEN_KEYS.contains(&key) && !LOG_KEYS.contains(&key)
}

/// The keys whose values differ between two tables, the log keys left out.
fn changed_but_logs(a: Option<&Table>, b: Option<&Table>) -> Vec<String> {
    let mut keys = changed_keys(a, b);
    keys.retain(|k| !LOG_KEYS.contains(&k.as_str()));
    keys
}

/// A loaded file, as far as a reload compares it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The file as TOML values.
    pub(crate) doc: Table,
    /// Each pool's name and worker spec, in order.
    pub(crate) specs: Vec<(String, nanny::WorkerSpec)>,
    /// Each pool's name and definition, in order.
    pub(crate) defs: Vec<(String, nanny::Pool)>,
}

/// What to do for one pool whose live keys changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolChange {
    /// The pool.
    pub(crate) pool: String,
    /// Whether its definition changed (its spec or a live key): the
    /// new one is the next snapshot's [`Snapshot::def`].
    pub(crate) config: bool,
    /// Its new worker count, if that changed.
    pub(crate) workers: Option<usize>,
}

/// What the new file changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plan {
    /// The pools to change live, in the file's order.
    pub(crate) changes: Vec<PoolChange>,
    /// What changed that needs a restart of nanny, each naming its key
    /// (`[supervisor] pulse changed`, `pool "web": silent changed`,
    /// `[[pool]] "jobs" added`).
    pub(crate) restart: Vec<String>,
    /// The running pools nothing changes for.
    pub(crate) unchanged: Vec<String>,
}

impl Snapshot {
    /// Each pool's name and table, in order.
    fn pools(&self) -> Vec<(String, &Table)> {
        let Some(Value::Array(pools)) = self.doc.get("pool") else {
            return Vec::new();
        };
        (pools.iter())
            .filter_map(Value::as_table)
            .map(|t| {
                let name = t
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(nanny::DEFAULT_POOL);
                (name.to_owned(), t)
            })
            .collect()
    }

    fn spec(&self, pool: &str) -> Option<&nanny::WorkerSpec> {
        self.specs.iter().find(|(n, _)| n == pool).map(|(_, s)| s)
    }

    /// `pool`'s definition.
    pub(crate) fn def(&self, pool: &str) -> Option<&nanny::Pool> {
        self.defs.iter().find(|(n, _)| n == pool).map(|(_, p)| p)
    }

    /// Takes `pool`'s live keys, spec and definition (with `config`) and
    /// its `workers` (with `workers`) from `next`: what was applied is in
    /// force.
    pub(crate) fn adopt(&mut self, pool: &str, next: &Snapshot, config: bool, workers: bool) {
        let theirs = next
            .pools()
            .into_iter()
            .find(|(n, _)| n == pool)
            .map(|(_, t)| t.clone());
        let Some(theirs) = theirs else { return };
        let mut keys: Vec<String> = Vec::new();
        if config {
            let mine = self.pools().into_iter().find(|(n, _)| n == pool);
            let mine_keys = mine.map(|(_, t)| t.keys().cloned().collect::<Vec<_>>());
            keys.extend((theirs.keys().cloned().chain(mine_keys.unwrap_or_default())).filter(|k| live(k)));
            if let (Some(mine), Some(new)) = (self.specs.iter_mut().find(|(n, _)| n == pool), next.spec(pool))
            {
                mine.1 = new.clone();
            }
            if let (Some(mine), Some(new)) = (self.defs.iter_mut().find(|(n, _)| n == pool), next.def(pool)) {
                mine.1 = new.clone();
            }
        }
        if workers {
            keys.push("workers".to_owned());
        }
        let Some(Value::Array(pools)) = self.doc.get_mut("pool") else {
            return;
        };
        let mine = (pools.iter_mut()).filter_map(Value::as_table_mut).find(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .unwrap_or(nanny::DEFAULT_POOL)
                == pool
        });
        if let Some(mine) = mine {
            for key in keys {
                match theirs.get(&key) {
                    Some(v) => mine.insert(key, v.clone()),
                    None => mine.remove(&key),
                };
            }
        }
    }
}

/// What `new` changes against `old`.
pub(crate) fn plan(old: &Snapshot, new: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    for section in ["supervisor", "api", "queue"] {
        let keys = changed_but_logs(table(&old.doc, section), table(&new.doc, section));
        plan.restart
            .extend(keys.into_iter().map(|k| format!("[{section}] {k} changed")));
    }
    if old.doc.get("listener") != new.doc.get("listener") {
        plan.restart.push("[[listener]] changed".to_owned());
    }
    let (old_pools, new_pools) = (old.pools(), new.pools());
    for (name, _) in &new_pools {
        if !old_pools.iter().any(|(n, _)| n == name) {
            plan.restart.push(format!("[[pool]] {name:?} added"));
        }
    }
    for (name, before) in &old_pools {
        let Some((_, after)) = new_pools.iter().find(|(n, _)| n == name) else {
            plan.restart.push(format!("[[pool]] {name:?} removed"));
            continue;
        };
        let keys = changed_but_logs(Some(before), Some(after));
        let frozen = keys.iter().any(|k| FROZEN_KEYS.contains(&k.as_str()));
        // A frozen key holds the whole pool back: its other keys wait too.
        let held = |k: &String| k != "workers" && (frozen || !live(k));
        plan.restart.extend(
            keys.iter()
                .filter(|k| held(k))
                .map(|k| format!("pool {name:?}: {k} changed")),
        );
        let spec_changed = old.spec(name) != new.spec(name);
        let config = !frozen && (spec_changed || keys.iter().any(|k| live(k)));
        let count = workers(after);
        let workers = (!frozen && workers(before) != count).then_some(count);
        if !config && workers.is_none() {
            if keys.is_empty() && !spec_changed {
                plan.unchanged.push(name.clone());
            }
            continue;
        }
        plan.changes.push(PoolChange {
            pool: name.clone(),
            config,
            workers,
        });
    }
    plan
}

fn table<'a>(doc: &'a Table, key: &str) -> Option<&'a Table> {
    doc.get(key).and_then(Value::as_table)
}

/// The keys whose values differ between two tables (either may be absent).
fn changed_keys(a: Option<&Table>, b: Option<&Table>) -> Vec<String> {
    let empty = Table::new();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let mut keys: Vec<String> = (a.keys().chain(b.keys()))
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A pool table's worker count, as the library counts it: `workers`, else
/// the number of `logical_ids`, else one per core.
fn workers(pool: &Table) -> usize {
    if let Some(n) = pool.get("workers").and_then(Value::as_integer) {
        return usize::try_from(n).unwrap_or(0);
    }
    if let Some(ids) = pool.get("logical_ids").and_then(Value::as_array) {
        return ids.len();
    }
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> Snapshot {
        let doc: Table = toml::from_str(text).unwrap();
        let specs: Vec<(String, nanny::WorkerSpec)> = (doc["pool"].as_array().unwrap().iter())
            .map(|p| {
                let p = p.as_table().unwrap();
                let name = p.get("name").and_then(Value::as_str).unwrap_or("default");
                let args = p.get("args").map(|a| a.to_string()).unwrap_or_default();
                (name.to_owned(), nanny::WorkerSpec::new("sh").arg(args))
            })
            .collect();
        let defs = (specs.iter())
            .map(|(n, s)| (n.clone(), nanny::Pool::new(n, s.clone())))
            .collect();
        Snapshot { doc, specs, defs }
    }

    const TWO: &str =
        "[[pool]]\nname = \"web\"\nargs = [\"a\"]\nworkers = 2\n\n[[pool]]\nname = \"jobs\"\nworkers = 1\n";

    #[test]
    fn the_same_file_changes_nothing() {
        let plan = plan(&snapshot(TWO), &snapshot(TWO));
        assert_eq!(plan.changes, []);
        assert_eq!(plan.restart, Vec::<String>::new());
        assert_eq!(plan.unchanged, ["web", "jobs"]);
    }

    #[test]
    fn a_spec_a_setting_and_a_count_are_live_and_the_rest_is_named() {
        let new = TWO.replace("[\"a\"]", "[\"b\"]").replace(
            "workers = 1",
            "workers = 3\nrestart = \"no\"\nmax_requests = 9\nsilent = true",
        ) + "\n[supervisor]\npulse = \"2s\"\nlog_dir = \"x\"\n\n[[pool]]\nname = \"new\"\n";
        let plan = plan(&snapshot(TWO), &snapshot(&new));
        let change = |pool: &str, config, workers| PoolChange {
            pool: pool.to_owned(),
            config,
            workers,
        };
        assert_eq!(
            plan.changes,
            [change("web", true, None), change("jobs", true, Some(3))]
        );
        assert_eq!(
            plan.restart,
            // The log keys are the reload's own (`silent`, `log_dir`).
            ["[supervisor] pulse changed", "[[pool]] \"new\" added"]
        );
        assert_eq!(plan.unchanged, Vec::<String>::new());
    }

    #[test]
    fn a_frozen_key_holds_the_whole_pool_back() {
        let new = TWO.replace("workers = 2", "workers = 3\nplain = true\nrestart = \"no\"");
        let plan = plan(&snapshot(TWO), &snapshot(&new));
        assert_eq!(plan.changes, []);
        assert_eq!(
            plan.restart,
            ["pool \"web\": plain changed", "pool \"web\": restart changed"]
        );
        assert_eq!(plan.unchanged, ["jobs"]);
    }

    #[test]
    fn what_was_applied_is_adopted_and_what_was_not_is_still_a_change() {
        let next = TWO
            .replace("[\"a\"]", "[\"b\"]")
            .replace("workers = 2", "workers = 2\nmax_restarts = 3");
        let (mut old, new) = (snapshot(TWO), snapshot(&next));
        old.adopt("web", &new, false, true);
        assert_eq!(plan(&old, &new).changes.len(), 1, "the definition is not adopted");
        old.adopt("web", &new, true, true);
        assert_eq!(plan(&old, &new), plan(&new, &new));
    }

    #[test]
    fn the_shared_queue_needs_a_restart() {
        let queue = "\n[queue]\nurl_env = \"REDIS_URL\"\nnamespace = \"shop\"\n";
        let added = plan(&snapshot(TWO), &snapshot(&(TWO.to_owned() + queue)));
        assert_eq!(
            added.restart,
            ["[queue] namespace changed", "[queue] url_env changed"]
        );
        assert_eq!(added.unchanged, ["web", "jobs"], "the pools are untouched");
        let moved = TWO.to_owned() + &queue.replace("shop", "shop2");
        let changed = plan(&snapshot(&(TWO.to_owned() + queue)), &snapshot(&moved));
        assert_eq!(changed.restart, ["[queue] namespace changed"]);
    }
}
