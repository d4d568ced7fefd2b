//! `som serve`: the page and JSON API of `som_serve` on a local port.
//!
//! This module only turns flags into a [`som_serve::SomServer`] and starts it:
//! the segmenters (the one the segmenter options choose, loaded once, plus the
//! pure-Rust ones, which cost nothing to offer), the model of the provider
//! options (its key read from the environment here, once), and the limits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use som_lmm::LmmClient;
use som_serve::{Access, Limits, SomServer};

use crate::provider_args::{key_hint, ProviderArgs};
use crate::seg_args::{kind_name, SegmenterArgs, SegmenterKind};

/// Arguments of `som serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Only this machine can connect unless you
    /// name another address (e.g. 0.0.0.0 for every interface).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on (0: any free port, printed at start).
    #[arg(long, value_name = "PORT", default_value_t = 7860)]
    pub port: u16,
    #[command(flatten)]
    pub segmenter: SegmenterArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Request limits of `som serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Server limits")]
pub struct LimitArgs {
    /// Images worked on at once (default: one per core).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,
    /// Requests admitted beyond --max-concurrent, waiting; more get 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_queue)]
    pub max_queue: usize,
    /// Seconds a request may take, queueing and asking the model included.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().request_timeout.as_secs_f64())]
    pub request_timeout: f64,
    /// The largest request body, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (Limits::default().max_body_bytes >> 20) as f64)]
    pub max_upload: f64,
    /// The most pixels (width x height) an uploaded image may have.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<Limits> {
        if !(self.request_timeout.is_finite()
            && self.request_timeout > 0.0
            && self.request_timeout <= 86_400.0)
        {
            bail!(
                "--request-timeout must be between 0 and 86400 seconds, got {}",
                self.request_timeout
            );
        }
        if !(self.max_upload.is_finite() && self.max_upload > 0.0 && self.max_upload <= 4096.0) {
            bail!(
                "--max-upload must be between 0 and 4096 MiB, got {}",
                self.max_upload
            );
        }
        let defaults = Limits::default();
        let limits = Limits {
            max_concurrent: self.max_concurrent.unwrap_or(defaults.max_concurrent),
            max_queue: self.max_queue,
            request_timeout: Duration::from_secs_f64(self.request_timeout),
            max_body_bytes: (self.max_upload * 1_048_576.0) as usize,
            max_pixels: self.max_pixels,
            ..defaults
        };
        limits
            .validate()
            .map_err(|e| anyhow::anyhow!("server limits: {e} (see --max-concurrent, --max-pixels)"))?;
        Ok(limits)
    }
}

/// Runs `som serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let limits = args.limits.limits()?;
    let mut builder = SomServer::builder().limits(limits).log_requests(true);

    // The segmenter the options choose first (the default of requests), then
    // the pure-Rust ones with the same parameters.
    let chosen = args.segmenter.kind()?;
    if args.segmenter.regions.is_some() || args.segmenter.boxes.is_some() {
        bail!("--regions/--boxes describe one image; a server segments each upload with a segmenter");
    }
    let built = args.segmenter.build()?;
    if let Some(t) = &built.load_model {
        eprintln!(
            "som serve: loaded {} in {:.1} s",
            kind_name(chosen),
            t.ms / 1000.0
        );
    }
    let access = if built.load_model.is_some() {
        Access::Exclusive
    } else {
        Access::Shared
    };
    builder = builder.segmenter(kind_name(chosen), built.segmenter, access);
    for kind in [SegmenterKind::Classic, SegmenterKind::Felzenszwalb] {
        if kind != chosen {
            let mut other = args.segmenter.clone();
            other.segmenter = Some(kind);
            // The options of segmenters with weights mean nothing to these.
            other.model = Default::default();
            other.maskdino = Default::default();
            builder = builder.segmenter(kind_name(kind), other.build()?.segmenter, Access::Shared);
        }
    }

    // The model: its key comes from the environment now, and stays in the client.
    let config = args.provider.config()?;
    let (provider, model) = (config.provider.info().name.to_string(), config.model.clone());
    builder = match key_hint(LmmClient::new(config)) {
        Ok(client) => builder.model(Arc::new(client), provider, model),
        Err(e) => {
            let reason = format!("{e:#}");
            eprintln!("som serve: warning: asking is off: {reason}");
            builder.without_model(reason)
        }
    };
    let server = builder.build()?;

    let addr = match args.host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", args.port),
        _ => format!("{}:{}", args.host, args.port),
    };
    som_serve::run(&server, &addr, |local| {
        eprintln!(
            "som serve: listening on http://{local}/ (segmenters: {}; model: {}); Ctrl-C stops",
            server.segmenter_names().join(", "),
            server.model_name().unwrap_or_else(|| "none".into())
        );
    })
    .with_context(|| format!("som serve on {addr}"))
}
