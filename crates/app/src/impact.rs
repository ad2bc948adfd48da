//! Tier impact counted in the background: settling every member under a draft takes about a
//! minute at a million members, longer than a page may take. The first preview of a draft
//! starts the count and waits a moment for it; a page asking again finds it counting (with how
//! far it is) or counted. One count per tenant: a newer draft's count replaces the older.

use patron_core::programme::ProgrammeDefinition;
use patron_core::TenantId;
use patron_store::programmes::TierImpact;
use patron_store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a preview waits for a count it started (or finds running) before answering that
/// it is still counting.
pub const TIER_IMPACT_WAIT: Duration = Duration::from_millis(700);
/// How long a finished count is shown again for the same draft before it is counted anew
/// (members keep buying meanwhile).
pub const TIER_IMPACT_FRESH: Duration = Duration::from_secs(120);

/// Where a tenant's tier impact count stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImpactCount {
    Counted(TierImpact),
    /// Still counting: members settled so far.
    Counting {
        settled: i64,
    },
}

type Finished = Option<Result<TierImpact, String>>;

struct Run {
    definition: String,
    started: Instant,
    settled: Arc<AtomicI64>,
    finished: watch::Receiver<Finished>,
    task: tokio::task::JoinHandle<()>,
}

/// The tenants' counts, the latest per tenant.
#[derive(Clone)]
pub struct ImpactCounts {
    runs: Arc<Mutex<HashMap<TenantId, Run>>>,
    wait: Duration,
}

impl Default for ImpactCounts {
    fn default() -> Self {
        ImpactCounts::waiting(TIER_IMPACT_WAIT)
    }
}

impl ImpactCounts {
    /// Counts whose asker waits up to `wait` for a count to finish.
    pub fn waiting(wait: Duration) -> ImpactCounts {
        ImpactCounts {
            runs: Arc::default(),
            wait,
        }
    }

    /// The impact of `definition` for `tenant_id`: counted (fresh), or counting after starting
    /// it (or finding it started) and waiting a moment ([`TIER_IMPACT_WAIT`] by default).
    pub async fn get(
        &self,
        store: &Store,
        tenant_id: TenantId,
        definition: &ProgrammeDefinition,
    ) -> Result<ImpactCount, String> {
        let key = serde_json::to_string(definition).map_err(|error| error.to_string())?;
        let (mut finished, settled) = {
            let mut runs = self.runs.lock().expect("impact counts lock");
            let reusable = runs.get(&tenant_id).is_some_and(|run| {
                run.definition == key && run.started.elapsed() < TIER_IMPACT_FRESH
            });
            if !reusable {
                if let Some(older) = runs.remove(&tenant_id) {
                    older.task.abort();
                }
                runs.insert(tenant_id, start(store, tenant_id, definition, key));
            }
            let run = &runs[&tenant_id];
            (run.finished.clone(), run.settled.clone())
        };
        // Without a wait, what is there now (the timer's granularity would otherwise let a
        // short count finish inside a zero wait).
        if !self.wait.is_zero() {
            // Replaced by a newer draft's count, or not done in time: still counting.
            let _ = tokio::time::timeout(self.wait, finished.wait_for(Option::is_some)).await;
        }
        let done = finished.borrow().clone();
        match done {
            Some(Ok(impact)) => Ok(ImpactCount::Counted(impact)),
            Some(Err(error)) => {
                // A failed count is not kept: the next preview counts again.
                self.runs
                    .lock()
                    .expect("impact counts lock")
                    .remove(&tenant_id);
                Err(error)
            }
            None => Ok(ImpactCount::Counting {
                settled: settled.load(Ordering::Relaxed),
            }),
        }
    }
}

fn start(store: &Store, tenant_id: TenantId, definition: &ProgrammeDefinition, key: String) -> Run {
    let (done, finished) = watch::channel(None);
    let settled = Arc::new(AtomicI64::new(0));
    let task = {
        let store = store.clone();
        let definition = definition.clone();
        let settled = settled.clone();
        tokio::spawn(async move {
            let counted = store
                .tier_impact_counting(tenant_id, &definition, chrono::Utc::now(), &settled)
                .await
                .map_err(|error| error.to_string());
            let _ = done.send(Some(counted));
        })
    };
    Run {
        definition: key,
        started: Instant::now(),
        settled,
        finished,
        task,
    }
}
