//! The service's clock. Handlers read it once per call and pass `now` into the
//! domain, which reads no clock of its own.

use chrono::{DateTime, SubsecRound as _, Utc};

/// The current time at the precision Postgres keeps (microseconds), so a response
/// says exactly what a later read will.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
