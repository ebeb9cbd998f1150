//! Load generation for `hearth-dev bench`: realistic CreateReferral requests for
//! distinct families and GetReferral of referrals made beforehand, a closed loop (C
//! callers, each sending its next request when the last one answers) and an open loop
//! paced at a fixed rate, either making any [`Call`], with latencies in microsecond HDR
//! histograms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use hearth_proto::referrals as pb;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::metadata::{Ascii, MetadataValue};

use crate::grpc::{self, Client};
use referrals::fixtures;

/// Latencies and outcomes of one run.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Successful calls, microseconds each.
    pub latency: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The measured window.
    pub window: Duration,
}

impl Stats {
    fn new(window: Duration) -> Result<Stats> {
        Ok(Stats {
            latency: histogram()?,
            errors: 0,
            first_error: None,
            window,
        })
    }

    fn record(&mut self, outcome: Result<Duration, tonic::Status>) {
        match outcome {
            Ok(took) => {
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                // Saturates at the histogram's top instead of failing.
                self.latency.saturating_record(us);
            }
            Err(status) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }

    fn merge(&mut self, other: &Stats) -> Result<()> {
        self.latency
            .add(&other.latency)
            .context("cannot merge latency histograms")?;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        Ok(())
    }

    /// Adds a later measurement window of the same load: calls, errors and time.
    pub fn append(&mut self, later: &Stats) -> Result<()> {
        self.merge(later)?;
        self.window += later.window;
        Ok(())
    }

    /// Successful calls per second over the window.
    pub fn rate(&self) -> f64 {
        self.latency.len() as f64 / self.window.as_secs_f64()
    }

    /// A quantile in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("cannot create a histogram")
}

/// Hands out distinct family numbers, so no two requests link or contend.
#[derive(Debug, Clone, Default)]
pub struct Families {
    next: Arc<AtomicU64>,
}

impl Families {
    fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

const CHILD_NAMES: [&str; 40] = [
    "Olivia", "Jack", "Isla", "Noah", "Freya", "Leo", "Emily", "Harris", "Ava", "Rory", "Sophie",
    "Lewis", "Amelia", "Finlay", "Grace", "Oliver", "Ella", "Alfie", "Millie", "Archie", "Lily",
    "James", "Mia", "Callum", "Evie", "Lucas", "Ruby", "Cameron", "Hannah", "Jamie", "Skye",
    "Ethan", "Eilidh", "Max", "Erin", "Logan", "Aria", "Thomas", "Zara", "Kai",
];
const FAMILY_NAMES: [&str; 40] = [
    "Smith",
    "Brown",
    "Wilson",
    "Robertson",
    "Campbell",
    "Stewart",
    "Thomson",
    "Anderson",
    "Scott",
    "Murray",
    "MacDonald",
    "Reid",
    "Taylor",
    "Clark",
    "Ross",
    "Young",
    "Mitchell",
    "Watson",
    "Paterson",
    "Morrison",
    "Fraser",
    "Walker",
    "Henderson",
    "Hamilton",
    "Graham",
    "Johnston",
    "Kerr",
    "Hughes",
    "Gray",
    "Hunter",
    "Ferguson",
    "Kelly",
    "Bell",
    "Martin",
    "Grant",
    "Allan",
    "Black",
    "Mackenzie",
    "Simpson",
    "Duncan",
];
const ADULT_NAMES: [&str; 12] = [
    "Laura", "Gemma", "Nicola", "Claire", "Kirsty", "Lisa", "Amanda", "Stacey", "Jennifer",
    "Rachel", "Emma", "Louise",
];
const POSTCODES: [&str; 8] = [
    "EH22 1AB", "EH19 2QT", "EH26 8LN", "EH22 4NU", "EH20 9AX", "EH18 1HX", "EH23 4TT", "EH22 5JH",
];
const REASONS: [pb::Reason; 6] = [
    pb::Reason::Sleep,
    pb::Reason::ChildBehaviour,
    pb::Reason::ParentalMentalHealth,
    pb::Reason::ParentingConfidence,
    pb::Reason::SchoolTransition,
    pb::Reason::EarlyYearsDevelopment,
];

/// A health visitor's referral for family number `n`: one child with a distinct NHS
/// number and a distinct name + date of birth + postcode, the mother, consent (the
/// sample referral, varied as an area's referrals vary).
pub fn referral_request(n: u64, now: DateTime<Utc>) -> pb::CreateReferralRequest {
    let child = CHILD_NAMES[(n % 40) as usize];
    let family = FAMILY_NAMES[(n / 40 % 40) as usize];
    let mother = ADULT_NAMES[(n % 12) as usize];
    let days_old = 30 + (n / 1600 % 3650) as i64;
    let born = now.date_naive() - chrono::Duration::days(days_old);
    let postcode = POSTCODES[(n / (1600 * 3650) % 8) as usize];
    let mut referral = fixtures::health_visitor_referral(
        &fixtures::Family {
            child,
            surname: family,
            born,
            nhs_number: fixtures::nhs_number(n),
            mother,
            postcode,
        },
        now - chrono::Duration::hours(1),
    );
    if let Some(f) = referral.family.as_mut() {
        f.children[0].ethnicity = "WHITE_SCOTTISH".into();
    }
    referral.reasons = vec![
        REASONS[(n % 6) as usize] as i32,
        REASONS[((n + 1) % 6) as usize] as i32,
    ];
    referral.description = format!(
        "{child} is {days_old} days old. Mum reports broken sleep and low mood and would \
         like help with routines and to meet other parents locally."
    );
    referral.access_needs = Some(pb::AccessNeeds {
        language: "en".into(),
        creche_needed: n.is_multiple_of(3),
        preferred_times: vec![pb::PreferredTime::WeekdayMorning as i32],
        ..Default::default()
    });
    fixtures::create_request(referral)
}

/// Names of referrals to read, handed out in turn, so that every one is read as
/// often as the others.
#[derive(Debug, Clone)]
pub struct Names {
    names: Arc<[String]>,
    next: Arc<AtomicU64>,
}

impl Names {
    fn take(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.names[(i % self.names.len() as u64) as usize]
    }

    /// Reads started so far, counting warm-up and failed ones.
    pub fn reads_started(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

/// What a load loop calls, again and again.
#[derive(Debug, Clone)]
pub enum Call {
    /// CreateReferral, each for a family not seen before.
    Create(Families),
    /// GetReferral, of each of these referrals in turn.
    Get(Names),
}

impl Call {
    async fn make(
        &self,
        client: &mut Client,
        auth: &MetadataValue<Ascii>,
    ) -> Result<(), tonic::Status> {
        match self {
            Call::Create(families) => create(client, auth, families).await.map(|_| ()),
            Call::Get(names) => {
                let req = pb::GetReferralRequest {
                    name: names.take().to_owned(),
                };
                client
                    .get_referral(grpc::request(req, auth))
                    .await
                    .map(|_| ())
            }
        }
    }
}

async fn create(
    client: &mut Client,
    auth: &MetadataValue<Ascii>,
    families: &Families,
) -> Result<pb::CreateReferralResponse, tonic::Status> {
    let req = referral_request(families.take(), Utc::now());
    client
        .create_referral(grpc::request(req, auth))
        .await
        .map(tonic::Response::into_inner)
}

/// Creates `count` referrals through the service, `concurrency` calls at a time, and
/// returns their names: something for GetReferral to read. Any failure fails the lot,
/// since a read of a referral that was never made would measure the wrong thing.
pub async fn seed(
    clients: &[Client],
    auth: &MetadataValue<Ascii>,
    families: &Families,
    count: usize,
    concurrency: usize,
) -> Result<Names> {
    let claimed = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for i in 0..concurrency.clamp(1, count.max(1)) {
        let mut client = clients[i % clients.len()].clone();
        let auth = auth.clone();
        let families = families.clone();
        let claimed = Arc::clone(&claimed);
        tasks.spawn(async move {
            let mut names = Vec::new();
            while claimed.fetch_add(1, Ordering::Relaxed) < count {
                let made = create(&mut client, &auth, &families)
                    .await
                    .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))
                    .context("CreateReferral failed while seeding referrals to read")?;
                match made.referral {
                    Some(r) if !r.name.is_empty() => names.push(r.name),
                    _ => bail!("CreateReferral answered without the referral's name"),
                }
            }
            anyhow::Ok(names)
        });
    }
    let mut names = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        names.extend(done.context("a seeding task panicked")??);
    }
    if names.is_empty() {
        bail!("no referrals were seeded to read");
    }
    Ok(Names {
        names: names.into(),
        next: Arc::default(),
    })
}

/// `concurrency` callers over `clients` (round robin), each making `call` back to
/// back; calls that start during `warmup` are not recorded, then calls that start
/// within `window` are.
/// `sample` is read when measuring starts and when the last call has ended (the
/// machine's CPU counters, say); both readings come back with the figures.
pub async fn closed_loop<T>(
    clients: &[Client],
    auth: &MetadataValue<Ascii>,
    call: &Call,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    sample: impl Fn() -> Option<T>,
) -> Result<(Stats, Option<(T, T)>)> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut tasks = JoinSet::new();
    for i in 0..concurrency {
        let mut client = clients[i % clients.len()].clone();
        let auth = auth.clone();
        let call = call.clone();
        tasks.spawn(async move {
            let mut stats = Stats::new(window)?;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let outcome = call.make(&mut client, &auth).await;
                if began >= measure_from {
                    stats.record(outcome.map(|()| began.elapsed()));
                }
            }
            anyhow::Ok(stats)
        });
    }
    tokio::time::sleep_until(measure_from).await;
    let first = sample();
    let mut total = Stats::new(window)?;
    while let Some(done) = tasks.join_next().await {
        total.merge(&done.context("a load task panicked")??)?;
    }
    Ok((total, first.zip(sample())))
}

/// An open loop: starts `call` every `1/rate` seconds for `warmup` and then `window`,
/// each in its own task so a slow call never delays the schedule; calls scheduled
/// within `window` are recorded. Latency counts from the scheduled start, so a stalled
/// scheduler shows up as latency rather than hiding.
/// `sample` is read when measuring starts and when the last call has ended, as in
/// [`closed_loop`].
pub async fn paced<T>(
    clients: &[Client],
    auth: &MetadataValue<Ascii>,
    call: &Call,
    rate: f64,
    warmup: Duration,
    window: Duration,
    sample: impl Fn() -> Option<T>,
) -> Result<(Stats, Option<(T, T)>)> {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut ticker = tokio::time::interval_at(start, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    let mut stats = Stats::new(window)?;
    let mut i = 0usize;
    let mut first = None;
    loop {
        let scheduled = ticker.tick().await;
        if scheduled >= end {
            break;
        }
        if scheduled >= measure_from && first.is_none() {
            first = Some(sample());
        }
        // Finished calls are collected as the run goes, so that their memory is
        // reused: kept to the end, tens of thousands of them made the load
        // generator fault in fresh pages all run long, on the CPUs it shares.
        while let Some(done) = tasks.try_join_next() {
            record_paced(&mut stats, done)?;
        }
        let mut client = clients[i % clients.len()].clone();
        i += 1;
        let auth = auth.clone();
        let call = call.clone();
        tasks.spawn(async move {
            let outcome = call.make(&mut client, &auth).await;
            (scheduled >= measure_from).then(|| outcome.map(|()| scheduled.elapsed()))
        });
    }
    while let Some(done) = tasks.join_next().await {
        record_paced(&mut stats, done)?;
    }
    Ok((stats, first.flatten().zip(sample())))
}

/// Records a paced call's outcome, unless it was scheduled in the warm-up (`None`).
fn record_paced(
    stats: &mut Stats,
    done: Result<Option<Result<Duration, tonic::Status>>, tokio::task::JoinError>,
) -> Result<()> {
    if let Some(outcome) = done.context("a paced call panicked")? {
        stats.record(outcome);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_referrals_are_valid_and_distinct() {
        let now = Utc::now();
        let mut identities = std::collections::HashSet::new();
        for n in (0..200_000).step_by(997) {
            let req = referral_request(n, now);
            let r = req.referral.as_ref().unwrap();
            let got = referrals::domain::validate::new_referral(r, "nhs-lothian", "t", now);
            assert!(got.is_ok(), "{n}: {:?}", got.err());
            let c = &r.family.as_ref().unwrap().children[0];
            let dob = c.date_of_birth.as_ref().unwrap();
            assert!(identities.insert((
                c.given_name.clone(),
                c.family_name.clone(),
                dob.year,
                dob.month,
                dob.day,
                r.postcode.clone()
            )));
        }
    }
}
