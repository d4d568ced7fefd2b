//! `som`: Set-of-Mark visual prompting from the command line.
//!
//! Subcommands: `mark` (segment → allocate → render), `segment` (write a
//! regions JSON), `ask` (mark, then ask a multimodal model). Each subcommand
//! lives in its own module; errors print as one line on stderr with a
//! non-zero exit status.

mod ask;
mod io;
mod mark;
mod sam_args;
mod seg_args;
mod segment;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mark(args) => mark::run(args),
        Command::Segment(args) => segment::run(args),
        Command::Ask(args) => ask::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("som: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
