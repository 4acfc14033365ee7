//! Selectors (`SEL` in the paths): `all`, a pool's name, a worker's name
//! (`web:01`, its slot) or a worker's id (`7` or `w7`, one process). A
//! pool's name wins over an id that reads the same.

use nanny::{Inspect, WorkerHealth, WorkerRef};

use super::ApiError;

/// What a selector names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every pool.
    All,
    /// One pool.
    Pool(String),
    /// One worker, by its name or id.
    Worker(WorkerRef),
}

/// One worker a verb applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// How to name it to the supervisor.
    pub(crate) worker: WorkerRef,
    /// Its name (`pool:NN`).
    pub(crate) name: String,
    /// Whether its slot is stopped.
    pub(crate) stopped: bool,
}

impl Selection {
    /// Reads `sel` against the pools `inspect` knows: 400 for text that
    /// cannot name anything, 404 `unknown_pool` for an unknown plain name.
    pub(crate) fn parse(sel: &str, inspect: &Inspect) -> Result<Self, ApiError> {
        Self::parse_with(sel, |name| inspect.pools.iter().any(|p| p.name == name))
    }

    /// [`parse`](Self::parse), with `is_pool` saying which names are pools.
    fn parse_with(sel: &str, is_pool: impl Fn(&str) -> bool) -> Result<Self, ApiError> {
        if sel == "all" {
            return Ok(Self::All);
        }
        if is_pool(sel) {
            return Ok(Self::Pool(sel.to_owned()));
        }
        match sel.parse::<WorkerRef>() {
            Ok(worker) => Ok(Self::Worker(worker)),
            Err(_) if sel.contains(':') => Err(ApiError::bad_request(format!(
                "{sel:?} is not a selector: a worker name (pool:01), a worker id (7), a pool or all"
            ))),
            Err(_) => Err(ApiError::not_found(
                "unknown_pool",
                format!("no pool named {sel:?} (nor a worker)"),
            )),
        }
    }

    /// The workers it names, in slot order: a pool's or every pool's slots
    /// (running and stopped), or the one worker (404 `unknown_worker` if
    /// there is none).
    pub(crate) fn targets(&self, inspect: &Inspect) -> Result<Vec<Target>, ApiError> {
        let slots = inspect
            .pools
            .iter()
            .filter(|p| match self {
                Self::All => true,
                Self::Pool(pool) => &p.name == pool,
                Self::Worker(_) => true,
            })
            .flat_map(|p| p.slots.iter());
        let slot_target = |s: &nanny::WorkerSlot| Target {
            worker: WorkerRef::Name(s.name.clone()),
            name: s.name.clone(),
            stopped: s.stopped,
        };
        match self {
            Self::All | Self::Pool(_) => Ok(slots.map(slot_target).collect()),
            Self::Worker(WorkerRef::Name(name)) => slots
                .filter(|s| &s.name == name)
                .map(slot_target)
                .next()
                .map(|t| vec![t])
                .ok_or_else(|| unknown_worker(name)),
            Self::Worker(WorkerRef::Id(id)) => (inspect.workers.iter())
                .find(|w| w.id == *id)
                .map(|w| {
                    vec![Target {
                        worker: WorkerRef::Id(*id),
                        name: w.name.clone(),
                        stopped: false,
                    }]
                })
                .ok_or_else(|| unknown_worker(id)),
        }
    }

    /// Whether `worker` is one it names.
    pub(crate) fn covers(&self, worker: &WorkerHealth) -> bool {
        match self {
            Self::All => true,
            Self::Pool(pool) => &worker.pool == pool,
            Self::Worker(WorkerRef::Name(name)) => &worker.name == name,
            Self::Worker(WorkerRef::Id(id)) => worker.id == *id,
        }
    }
}

fn unknown_worker(worker: impl std::fmt::Display) -> ApiError {
    ApiError::not_found("unknown_worker", format!("no worker {worker}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_name_all_a_pool_a_worker_or_nothing() {
        let parse = |sel: &str| Selection::parse_with(sel, |p| p == "web" || p == "7");
        assert_eq!(parse("all"), Ok(Selection::All));
        assert_eq!(parse("web"), Ok(Selection::Pool("web".into())));
        assert_eq!(parse("7"), Ok(Selection::Pool("7".into())), "a pool's name wins");
        assert_eq!(
            parse("web:01"),
            Ok(Selection::Worker(WorkerRef::Name("web:01".into())))
        );
        assert_eq!(parse("w8"), Ok(Selection::Worker("w8".parse().unwrap())));
        assert_eq!(parse("8"), Ok(Selection::Worker("w8".parse().unwrap())));
        let code = |sel: &str| parse(sel).map_err(|e| (e.status.as_u16(), e.code));
        assert_eq!(code("nope"), Err((404, "unknown_pool")));
        assert_eq!(code("web:xx"), Err((400, "bad_request")));
    }
}
