//! Logs and traces: the process's `tracing` subscriber. Logs go to stderr, filtered
//! by `log_level`; when `otlp_endpoint` is set, spans also go to an OpenTelemetry
//! collector over OTLP/gRPC, filtered on their own so that a quiet log level does
//! not empty the traces.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, LogFormat};

/// How long exiting waits for the last spans to reach the collector.
const EXPORT_AT_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one export may take before the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The installed subscriber's exporter, if any. Call [`Telemetry::shutdown`] before
/// the process exits, or the spans of its last seconds are lost.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber: the log layer and, when configured, the OTLP
    /// layer and the W3C trace-context propagator that lets requests continue a
    /// caller's trace.
    ///
    /// Must be called inside a tokio runtime's context (`Runtime::enter`): the gRPC
    /// channel starts its connection task on it, and the batch exporter's thread
    /// sends through that task for as long as the runtime lives.
    pub fn init(config: &Config) -> anyhow::Result<Self> {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
        let logs = match config.log_format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .boxed(),
            LogFormat::Text => {
                tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter).boxed()
            }
        };
        let provider = if config.otlp_endpoint.is_empty() { None } else { Some(tracer_provider(config)?) };
        let traces = provider.as_ref().map(|provider| {
            let tracer = provider.tracer("aether");
            // Only our own spans and events: the exporter's own gRPC client (tonic,
            // h2, hyper) must not trace itself into the batches it sends.
            // Thread names and ids say nothing about async work that hops threads.
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_filter(Targets::new().with_target("aether", tracing::Level::INFO))
        });
        tracing_subscriber::registry().with(logs).with(traces).try_init().context("cannot install the logger")?;
        if provider.is_some() {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            tracing::info!(endpoint = %config.otlp_endpoint, "exporting spans over OTLP");
        }
        Ok(Self { provider })
    }

    /// Sends the spans still queued and stops the exporter. Blocks: call it outside
    /// async code, while the tokio runtime is still alive.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown_with_timeout(EXPORT_AT_EXIT_TIMEOUT)
        {
            eprintln!("aether: could not send the last spans to the collector: {error}");
        }
    }
}

/// The OTLP/gRPC exporter behind a batch processor, with the service's name and
/// the configured sampling ratio (a sampled caller's trace is always continued).
fn tracer_provider(config: &Config) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.otlp_endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("cannot set up the OTLP exporter for {}", config.otlp_endpoint))?;
    let resource = Resource::builder()
        .with_service_name(config.otlp_service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.otlp_sample_ratio))))
        .build())
}
