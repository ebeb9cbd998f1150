//! Structured logs and traces, set up from the already-checked [`TelemetryConfig`].
//! Logs are key/value (JSON with `HEARTH_LOG_FORMAT=json`); spans go to an OTLP
//! collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Trace
//! context is always real (W3C `traceparent`), exported or not, so it can be carried
//! from gRPC metadata into the outbox, onto NATS headers and back out in consumers.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryConfig;

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes spans, last thing
/// before exit.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("telemetry shutdown: {err}");
        }
    }
}

/// Installs the global subscriber for `service`. Safe to call more than once (tests
/// do): later calls keep the first subscriber.
pub fn init(service: &'static str, cfg: &TelemetryConfig) -> Telemetry {
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    if let Some(endpoint) = &cfg.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig as _;
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(err) => eprintln!("OTLP exporter not started: {err}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);

    // Checked when the configuration was read.
    let filter = EnvFilter::try_new(&cfg.log_filter)
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let fmt = if cfg.json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        // Colour only on a terminal: log files and CI output stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt::layer()
            .compact()
            .with_target(false)
            .with_ansi(ansi)
            .boxed()
    };
    // `RUST_LOG` filters what is logged, not what is traced: a quieter log must not
    // lose the trace context that calls carry onto their events.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .try_init();
    Telemetry { provider }
}

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderCarrier<'a>(&'a http::HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// The W3C `traceparent` of the current span, if it has a valid trace context.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut MapCarrier(&mut map));
    map.remove("traceparent")
}

/// Makes `span` a child of the trace named by `traceparent` (from an event header).
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let cx = TraceContextPropagator::new().extract(&OneHeader(traceparent));
    let _ = span.set_parent(cx);
}

/// The span for one incoming gRPC call, continuing the caller's trace when its
/// metadata carries `traceparent`. Installed with `Server::trace_fn`.
pub fn grpc_request_span(req: &http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    let span = tracing::info_span!(
        "grpc",
        otel.name = %path.trim_start_matches('/'),
        rpc.system = "grpc",
        caller_org = tracing::field::Empty,
    );
    let cx = TraceContextPropagator::new().extract(&HeaderCarrier(req.headers()));
    let _ = span.set_parent(cx);
    span
}

/// The trace id of the current span, for error messages and logs.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
