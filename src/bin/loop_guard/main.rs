//! `loop-guard`: the operator's tool for lambda-loop-guard (feature `cli`).
//!
//! ```text
//! loop-guard id orders billing                  # the function ids on the wire
//! loop-guard decode 'Root=1-...;LoopGuard=v1.3.1a2b3c4d-2.00c0ffee-1' --names orders,billing
//! loop-guard forge --depth 9 --function orders  # a lineage for a smoke test
//! loop-guard redrive --from "$DLQ_URL" --to "$QUEUE_URL" --dry-run
//! ```
//!
//! `redrive` uses the default AWS configuration (environment, profile,
//! `AWS_ENDPOINT_URL`).

mod decode;
mod redrive;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lambda_loop_guard::carrier::KEY;
use lambda_loop_guard::trace_header::LOOP_GUARD_FIELD;
use lambda_loop_guard::{FunctionId, Lineage};

#[derive(Parser)]
#[command(
    name = "loop-guard",
    version,
    about = "Inspect, forge and redrive lambda-loop-guard chains"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The function id(s) the wire format uses for these identities
    /// (`LOOP_GUARD_FUNCTION_ID`, else the function name).
    Id {
        /// Function identities.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// A chain in words, from a lineage, a trace header, or a whole log or
    /// EMF line.
    Decode {
        /// The text to read.
        value: String,
        /// Function identities, comma-separated, to name the ids.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
    },
    /// A lineage in which FUNCTION already ran DEPTH times, for a smoke test
    /// (the next run of FUNCTION with LOOP_GUARD_MAX_DEPTH=DEPTH is dropped).
    Forge {
        /// Runs of the function already in the chain.
        #[arg(long)]
        depth: u16,
        /// The function identity.
        #[arg(long)]
        function: String,
        /// What to print.
        #[arg(long = "as", value_enum, default_value = "attribute")]
        format: ForgeFormat,
    },
    /// Moves messages from a DLQ back to their queue without our attribute
    /// and our trace field (every other attribute kept), deleting each from
    /// the DLQ only after it was sent: killed halfway, nothing is lost. A
    /// lineage inside an SNS envelope in the body is not removed (the dry
    /// run names such messages).
    Redrive {
        /// The DLQ's URL.
        #[arg(long)]
        from: String,
        /// The queue's URL.
        #[arg(long)]
        to: String,
        /// Move at most this many messages.
        #[arg(long)]
        max: Option<usize>,
        /// Show what would move; send and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Pause between messages, in milliseconds (a gentle redrive, one
        /// message at a time).
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// How long a message being moved stays hidden in the DLQ, in
        /// seconds; if the redrive stops, it is visible again after that.
        #[arg(long, default_value_t = 30)]
        visibility_timeout: i32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ForgeFormat {
    /// The lineage value alone (the `loop-guard` message attribute's value).
    Lineage,
    /// `aws sqs send-message --message-attributes` JSON.
    Attribute,
    /// A trace header field, `LoopGuard=...`.
    Header,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Id { names } => {
            for name in names {
                println!("{name} {}", FunctionId::from_identity(&name));
            }
            Ok(())
        }
        Command::Decode { value, names } => decode::describe(&value, &names).map(|text| {
            print!("{text}");
        }),
        Command::Forge {
            depth,
            function,
            format,
        } => {
            let id = FunctionId::from_identity(&function);
            let lineage = (0..depth).fold(Lineage::new(), |l, _| l.record_run(id));
            match format {
                ForgeFormat::Lineage => println!("{lineage}"),
                ForgeFormat::Attribute => {
                    println!(r#"{{"{KEY}":{{"DataType":"String","StringValue":"{lineage}"}}}}"#)
                }
                ForgeFormat::Header => println!("{LOOP_GUARD_FIELD}={lineage}"),
            }
            Ok(())
        }
        Command::Redrive {
            from,
            to,
            max,
            dry_run,
            interval_ms,
            visibility_timeout,
        } => {
            let options = redrive::Options {
                from,
                to,
                max,
                dry_run,
                interval: std::time::Duration::from_millis(interval_ms),
                visibility_timeout,
            };
            redrive::run(&options).await.map(|moved| {
                let verb = if dry_run { "would move" } else { "moved" };
                println!("{verb} {moved} message(s)");
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loop-guard: {error}");
            ExitCode::FAILURE
        }
    }
}
