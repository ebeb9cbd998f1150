//! CreateReferral's group commit: creates that arrive together are written together.
//!
//! This is referrals' own optimisation for its one hot call, measured in
//! docs/BENCHMARKS.md, and not part of the shape a new service copies: a service's
//! mutations claim their request id and write in one transaction of their own
//! (`hearth_platform::idempotency::Requests::begin`).
//!
//! A handler validates its request, then hands the referral to the intake and waits.
//! A few writer tasks, on a thread and connections of their own, each take every
//! create waiting (up to a limit) and write them in one transaction of four round
//! trips — `BEGIN`, [`store::claim_and_match`], [`store::insert_referrals`],
//! `COMMIT` — however many there are. Under load the fixed costs of a transaction
//! (round trips, statement start-up, the commit's WAL flush) are shared by the whole
//! batch; with one call in flight a batch is that one call, so nothing waits for
//! company.
//!
//! What holds for each create is what held when each had its own transaction:
//!
//! - its rows and its events commit together, or not at all;
//! - its request id is claimed in the same transaction;
//! - two creates that could link the same child (a shared identity lock key) or that
//!   share a request id are never in one transaction: the later one goes in a later
//!   transaction, where it sees the earlier one committed;
//! - one create cannot fail another: when a batch's transaction fails, each of its
//!   creates is written again on its own and gets its own answer;
//! - a caller that has gone away (deadline, cancellation) before its batch starts is
//!   not written, as a dropped call's transaction was rolled back before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use hearth_platform::access::Access;
use hearth_platform::audit::{Auditor, OwnedChain, Record};
use hearth_platform::db;
use hearth_platform::error::ApiError;
use hearth_platform::idempotency::{Claim, RequestKey};
use hearth_platform::outbox::{Outbox, OutboxEvent};
use hearth_platform::service::Service as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::domain::Referral;
use crate::domain::linking::{self, identity_keys};
use crate::store::{self, ClaimInput, NewReferral};
use crate::{Referrals, events};

/// A validated create, ready to write.
pub struct Create {
    /// The caller's organisation, request id and request digest.
    pub key: RequestKey,
    pub referral: Referral,
    /// The caller's span: the events are made in it, so they carry its trace.
    pub span: tracing::Span,
    /// The audit record of the call (its records are named once written, the family
    /// being known only after linking).
    pub audit: Record,
}

/// What became of a create.
#[derive(Debug)]
pub enum Outcome {
    /// Written now; the referral as stored (linked to a known family where one
    /// matched).
    Created(Box<Referral>),
    /// The same request was made before: this is the referral it made.
    Replay(String),
    /// The request id was used before for a different request.
    Conflict,
}

/// How many writers, and how many creates one transaction may take
/// (`HEARTH_REFERRALS_WRITERS`, `HEARTH_REFERRALS_WRITE_BATCH_MAX`).
#[derive(Debug, Clone, Copy)]
pub struct IntakeOptions {
    pub writers: usize,
    pub max_batch: usize,
}

struct Pending {
    create: Create,
    reply: oneshot::Sender<Result<Outcome, ApiError>>,
}

/// Never prints the referral: it is personal data.
impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

/// The handlers' end of the intake. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Intake {
    queue: mpsc::UnboundedSender<Pending>,
}

/// The running writers; [`Writers::finish`] stops them.
#[derive(Debug)]
pub struct Writers {
    done: oneshot::Receiver<()>,
    stop: CancellationToken,
}

impl Writers {
    /// Closes the intake to new creates, writes those already queued, and waits for
    /// the writers to end. Call once the server has stopped taking calls.
    pub async fn finish(self) {
        self.stop.cancel();
        // An error means the thread is gone already (it ends when every handle on
        // the intake is dropped, or it panicked and said so on stderr).
        let _ = self.done.await;
    }
}

impl Intake {
    /// Starts the writers on a thread of their own, with a runtime and database
    /// connections of their own (one per writer, plus a pool of one for the relay's
    /// wake-up): each batch's four round trips are on every waiting caller's path,
    /// and on the shared runtime each reply waited its turn behind the handlers and
    /// the load (half-load p99 16-22 ms there, 16-18 ms here; docs/BENCHMARKS.md).
    /// Each writer keeps its connection rather than taking one from a pool per
    /// batch, which cost a check round trip on each return (sqlx's). The
    /// connections are made from `pool`'s options.
    pub fn start(
        pool: &PgPool,
        opts: IntakeOptions,
        auditor: Auditor,
    ) -> std::io::Result<(Intake, Writers)> {
        let (queue, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let (done_tx, done) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("referrals-intake")
            .build()?;
        let options = (*pool.connect_options()).clone();
        let writers = opts.writers.max(1);
        let max = opts.max_batch.max(1);
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("referrals-intake".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let pool = db::pool_options(1).connect_lazy_with(options.clone());
                    let outbox =
                        Outbox::new(pool.clone(), Referrals::NAME, Referrals::STREAM.source);
                    let writer = Arc::new(Writer {
                        options,
                        outbox,
                        auditor,
                        access: Access::new(Referrals::NAME),
                    });
                    let queue = Arc::new(Mutex::new(rx));
                    let mut tasks = JoinSet::new();
                    for _ in 0..writers {
                        tasks.spawn(Arc::clone(&writer).run(
                            Arc::clone(&queue),
                            max,
                            stopping.clone(),
                        ));
                    }
                    tasks.join_all().await;
                    pool.close().await;
                });
                let _ = done_tx.send(());
            })?;
        Ok((Intake { queue }, Writers { done, stop }))
    }

    /// Writes `create` (with whatever else is waiting) and says what became of it.
    /// `PoolClosed` once the intake has been closed by [`Writers::finish`].
    pub async fn submit(&self, create: Create) -> Result<Outcome, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { create, reply })
            .map_err(|_| ApiError::from(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| ApiError::from(sqlx::Error::PoolClosed))?
    }
}

struct Writer {
    options: PgConnectOptions,
    outbox: Outbox,
    auditor: Auditor,
    access: Access,
}

/// A writer's own connection, made on first use and made again after it broke, with
/// the audit chain it writes its creates' records on (a new one with each
/// connection: a lost connection leaves the old chain's head as the database has it).
#[derive(Default)]
struct Conn {
    live: Option<(PgConnection, Instant, Option<OwnedChain>)>,
}

impl Conn {
    /// The connection, checked first if it sat idle (as our pools do, `db`), and its
    /// audit chain when the log is written.
    async fn get(
        &mut self,
        options: &PgConnectOptions,
        auditor: &Auditor,
    ) -> Result<(&mut PgConnection, Option<&mut OwnedChain>), sqlx::Error> {
        if let Some((conn, used, _)) = &mut self.live
            && !db::usable(conn, used.elapsed()).await
        {
            self.live = None;
        }
        if self.live.is_none() {
            let mut conn = PgConnection::connect_with(options).await?;
            let chain = if auditor.enabled() {
                Some(OwnedChain::open(&mut conn, auditor.schema()).await?)
            } else {
                None
            };
            self.live = Some((conn, Instant::now(), chain));
        }
        let (conn, used, chain) = self.live.as_mut().expect("made above");
        *used = Instant::now();
        Ok((conn, chain.as_mut()))
    }

    /// After a failed transaction: keeps the connection if it still answers, so that
    /// the next transaction opens a new one only when this one broke.
    async fn check(&mut self) {
        if let Some((conn, _, _)) = &mut self.live
            && conn.ping().await.is_err()
        {
            self.live = None;
        }
    }

    async fn close(self) {
        if let Some((conn, _, _)) = self.live {
            let _ = conn.close().await;
        }
    }
}

impl Writer {
    /// Takes every create waiting (up to `max`) and writes them, until the intake is
    /// closed and empty.
    async fn run(
        self: Arc<Self>,
        queue: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
        max: usize,
        stop: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(max);
        let mut conn = Conn::default();
        loop {
            // One writer at a time takes what is waiting; the others queue on the
            // lock, so each batch holds everything that arrived meanwhile.
            let got = {
                let mut rx = queue.lock().await;
                tokio::select! {
                    biased;
                    n = rx.recv_many(&mut batch, max) => n,
                    _ = stop.cancelled() => {
                        rx.close();
                        rx.recv_many(&mut batch, max).await
                    }
                }
            };
            if got == 0 {
                // Closed (or every handle dropped), and nothing left queued.
                conn.close().await;
                return;
            }
            self.write(&mut conn, std::mem::take(&mut batch)).await;
        }
    }

    async fn write(&self, conn: &mut Conn, batch: Vec<Pending>) {
        let live: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
        for round in rounds(live, |p| {
            let c = &p.create;
            let mut keys = identity_keys(&c.referral);
            keys.push(format!(
                "request|{}|{}",
                c.key.organisation, c.key.request_id
            ));
            keys
        }) {
            self.write_round(conn, round).await;
        }
    }

    /// One transaction for `round`; if it fails and held more than one create, each is
    /// written again on its own, so that it gets its own answer.
    async fn write_round(&self, conn: &mut Conn, round: Vec<Pending>) {
        let creates: Vec<&Create> = round.iter().map(|p| &p.create).collect();
        let span = tracing::debug_span!("create_batch", size = creates.len());
        match self.transaction(conn, &creates).instrument(span).await {
            Ok(outcomes) => {
                for (p, outcome) in round.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(outcome));
                }
            }
            Err(err) if round.len() > 1 => {
                tracing::warn!(size = round.len(), error = %err, "create batch failed; writing each on its own");
                for p in round {
                    let answer = self
                        .transaction(conn, &[&p.create])
                        .instrument(tracing::debug_span!("create_batch", size = 1))
                        .await
                        .and_then(|o| o.into_iter().next().ok_or_else(unanswered));
                    let _ = p.reply.send(answer);
                }
            }
            Err(err) => {
                if let Some(p) = round.into_iter().next() {
                    let _ = p.reply.send(Err(err));
                }
            }
        }
    }

    async fn transaction(
        &self,
        conn: &mut Conn,
        creates: &[&Create],
    ) -> Result<Vec<Outcome>, ApiError> {
        let (c, chain) = conn.get(&self.options, &self.auditor).await?;
        let result = self.transaction_on(c, chain, creates).await;
        if result.is_err() {
            conn.check().await;
        }
        result
    }

    async fn transaction_on(
        &self,
        conn: &mut PgConnection,
        chain: Option<&mut OwnedChain>,
        creates: &[&Create],
    ) -> Result<Vec<Outcome>, ApiError> {
        let lock_keys: Vec<Vec<String>> =
            creates.iter().map(|c| identity_keys(&c.referral)).collect();
        let inputs: Vec<ClaimInput> = creates
            .iter()
            .zip(&lock_keys)
            .map(|(c, keys)| ClaimInput {
                key: &c.key,
                referral: &c.referral,
                lock_keys: keys,
            })
            .collect();
        let mut tx = conn.begin().await?;
        let found = store::claim_and_match(&mut tx, &inputs).await?;

        let mut outcomes = Vec::with_capacity(creates.len());
        let mut written: Vec<(Referral, HashSet<Uuid>, Vec<OutboxEvent>)> = Vec::new();
        for (c, (claim, matches)) in creates.iter().zip(found) {
            match claim {
                Claim::Replay(id) => outcomes.push(Some(Outcome::Replay(id))),
                Claim::Conflict => outcomes.push(Some(Outcome::Conflict)),
                Claim::New => {
                    let mut r = c.referral.clone();
                    let link = linking::link(&mut r, &matches);
                    let events = c.span.in_scope(|| {
                        let mut out = vec![events::received(&r)];
                        if r.order.is_some() {
                            out.push(events::parenting_order_recorded(&r, false, r.received_at));
                        }
                        if let Some((_, how)) = link.family {
                            out.push(events::family_linked(&r, &link.matched, how));
                        }
                        out
                    });
                    written.push((r, link.new_members, events));
                    outcomes.push(None);
                }
            }
        }
        if !written.is_empty() {
            let rows: Vec<NewReferral> = written
                .iter()
                .map(|(r, new_members, events)| NewReferral {
                    referral: r,
                    new_family: !r.linked_existing,
                    new_members,
                    events,
                })
                .collect();
            store::insert_referrals(&mut tx, &self.outbox, &rows).await?;
            // A court-ordered referral's responsible officer has a relationship with
            // the family while the order stands (the access model).
            for (r, _, _) in written.iter().filter(|(r, _, _)| r.order.is_some()) {
                store::relate_officer(&self.access, &mut tx, r, r.received_at).await?;
            }
        }
        let records: Vec<Record> = creates
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_none())
            .zip(&written)
            .map(|((c, _), (r, _, _))| {
                c.audit.clone().of(
                    vec![crate::convert::referral_name(r.id)],
                    vec![crate::convert::family_name(r.family_id)],
                )
            })
            .collect();
        let pending = match &chain {
            Some(chain) => {
                chain
                    .append(
                        &mut tx,
                        self.auditor.schema(),
                        self.auditor.sealer(),
                        &records,
                    )
                    .await
                    .map_err(|err| {
                        tracing::error!(error = %err, "creates' audit records could not be written");
                        ApiError::Unavailable {
                            message: "the referral could not be recorded in the audit log; nothing was written; retry".into(),
                        }
                    })?
            }
            None => None,
        };
        self.outbox.commit(tx).await?;
        if let Some(chain) = chain {
            chain.committed(pending);
        }
        // The gaps are the creates written, in order.
        let mut made = written.into_iter().map(|(r, _, _)| r);
        outcomes
            .into_iter()
            .map(|o| {
                o.or_else(|| made.next().map(|r| Outcome::Created(Box::new(r))))
                    .ok_or_else(unanswered)
            })
            .collect()
    }
}

/// An internal error: a create left without an outcome (a bug, never the caller's).
fn unanswered() -> ApiError {
    ApiError::from(sqlx::Error::Protocol(
        "a create was left without an outcome".into(),
    ))
}

/// Splits a batch into transactions written one after another, so that no
/// transaction holds two creates sharing a key: a request id, or an identity lock key
/// (they could be the same child, and the later must see the earlier committed to link
/// to it). Each create goes in the first transaction after every earlier create it
/// shares a key with, so such creates keep their order of arrival.
fn rounds<T>(batch: Vec<T>, keys: impl Fn(&T) -> Vec<String>) -> Vec<Vec<T>> {
    let mut rounds: Vec<Vec<T>> = Vec::new();
    // For each key, the last round that holds it.
    let mut last: HashMap<String, usize> = HashMap::new();
    for item in batch {
        let keys = keys(&item);
        let at = keys
            .iter()
            .filter_map(|k| last.get(k).map(|r| r + 1))
            .max()
            .unwrap_or(0);
        for k in keys {
            last.insert(k, at);
        }
        if rounds.len() <= at {
            rounds.resize_with(at + 1, Vec::new);
        }
        rounds[at].push(item);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(items: &[(u32, &[&str])]) -> Vec<Vec<u32>> {
        let batch: Vec<(u32, Vec<String>)> = items
            .iter()
            .map(|(n, k)| (*n, k.iter().map(|s| s.to_string()).collect()))
            .collect();
        rounds(batch, |(_, k)| k.clone())
            .into_iter()
            .map(|r| r.into_iter().map(|(n, _)| n).collect())
            .collect()
    }

    #[test]
    fn creates_sharing_no_key_share_one_transaction() {
        assert_eq!(
            keyed(&[(1, &["a"]), (2, &["b"]), (3, &["c", "d"])]),
            vec![vec![1, 2, 3]]
        );
        assert_eq!(keyed(&[]), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn creates_sharing_a_key_go_in_later_transactions_in_arrival_order() {
        // 2 shares "a" with 1; 3 shares "b" with 2; 4 is free; 5 shares "a" again.
        assert_eq!(
            keyed(&[
                (1, &["a"]),
                (2, &["a", "b"]),
                (3, &["b"]),
                (4, &["z"]),
                (5, &["a"]),
            ]),
            vec![vec![1, 4], vec![2], vec![3, 5]]
        );
        // The same request id sent three times: three transactions.
        assert_eq!(
            keyed(&[(1, &["r"]), (2, &["r"]), (3, &["r"])]),
            vec![vec![1], vec![2], vec![3]]
        );
    }
}
