//! `som`: Set-of-Mark visual prompting from the command line.
//!
//! Subcommands: `mark` (segment → allocate → render), `segment` (write a
//! regions JSON), `ask` (mark, then ask a multimodal model), `eval` (run,
//! report and score benchmarks), `serve` (a local page and JSON API, from the
//! `som-serve` crate). Each subcommand
//! lives in its own module; errors print as one line on stderr with a
//! non-zero exit status.

mod ask;
mod eval;
mod io;
mod mark;
mod maskdino_args;
mod model_args;
mod provider_args;
mod sam_args;
mod seg_args;
mod segment;
mod serve;
mod stages;
mod style_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Set-of-Mark visual prompting: mark image regions so a multimodal model can point at them.
#[derive(Debug, Parser)]
#[command(name = "som", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Segment an image, put a mark on every region, and write the marked image.
    Mark(mark::MarkArgs),
    /// Segment an image and write its regions as JSON.
    Segment(segment::SegmentArgs),
    /// Mark an image and ask a multimodal model about it.
    Ask(ask::AskArgs),
    /// Evaluate a model on a benchmark, re-score its answers, or score predictions.
    Eval(eval::EvalArgs),
    /// Serve a local web page and JSON API that mark images and ask a model about them.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    // LibTorch's many large short-lived tensors, without the page faults (see the docs).
    #[cfg(feature = "torch")]
    som_segment::torch::retain_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match cli.command {
        Command::Mark(args) => mark::run(args),
        Command::Segment(args) => segment::run(args),
        Command::Ask(args) => ask::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, each said once.
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("som: error: {}", som_core::ErrorChain(e));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap prints them; a usage error is one
/// line on stderr, like every other error, with exit status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = e.to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!("som: error: {first} (see som --help)");
    ExitCode::from(2)
}
