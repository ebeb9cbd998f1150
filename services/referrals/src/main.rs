//! `referrals`: Hearth's front door as a process. The service kit reads and checks the
//! configuration, starts telemetry and runs the command:
//!
//! ```text
//! referrals                        serve (the default)
//! referrals migrate                apply migrations and exit
//! referrals republish --from SEQ   publish the outbox again from sequence SEQ
//! ```

// glibc's allocator cost the service a measurable share of its CPU under load (see
// docs/BENCHMARKS.md); `hearth-dev bench`, which hosts the service, uses the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hearth_platform::service::main::<referrals::Referrals>()
}
