//! A real SQS self-loop, stopped by the guard, in one process with no AWS
//! account: an in-memory queue stands in for SQS (visibility, receive count,
//! redrive to a DLQ after `maxReceiveCount`), each delivery is a real
//! `LambdaEvent<SqsEvent>`, the real `LoopGuardLayer` wraps the handler, and the
//! handler sends one message back to its own queue per record, the bug that
//! makes a loop.
//!
//! ```text
//! cargo run --example local_loop                      # default threshold 10
//! cargo run --example local_loop -- --max-depth 5
//! cargo run --example local_loop -- --mode observe --max-deliveries 30
//! ```

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use lambda_loop_guard::carrier::KEY;
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::{LoopGuardConfig, LoopGuardLayer, Mode};
use lambda_runtime::{Context, LambdaEvent};
use tower::{ServiceBuilder, ServiceExt};

const FUNCTION: &str = "demo-self-loop";

/// Just enough of SQS: a FIFO of visible messages, receive counts, a DLQ.
#[derive(Default)]
struct InMemoryQueue {
    visible: VecDeque<Message>,
    dead_letters: Vec<Message>,
    next_id: u32,
    sent: u32,
}

#[derive(Clone)]
struct Message {
    id: String,
    body: String,
    attributes: HashMap<String, SqsMessageAttribute>,
    receive_count: u32,
}

impl InMemoryQueue {
    /// SendMessage. The lineage attribute is written the way the SDK
    /// interceptor writes it: from the current chain, if inside a guarded
    /// handler.
    fn send(&mut self, body: String) -> String {
        self.next_id += 1;
        self.sent += 1;
        let id = format!("m-{}", self.next_id);
        let mut attributes = HashMap::new();
        if let Some(chain) = Chain::current() {
            let mut attribute = SqsMessageAttribute::default();
            attribute.data_type = Some("String".into());
            attribute.string_value = Some(chain.lineage_for_send(1).to_text());
            attributes.insert(KEY.to_owned(), attribute);
        }
        self.visible.push_back(Message {
            id: id.clone(),
            body,
            attributes,
            receive_count: 0,
        });
        id
    }

    fn receive(&mut self) -> Option<Message> {
        let mut message = self.visible.pop_front()?;
        message.receive_count += 1;
        Some(message)
    }
}

struct Options {
    max_depth: Option<u32>,
    mode: Option<Mode>,
    max_receive_count: u32,
    max_deliveries: u32,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        max_depth: None,
        mode: None,
        max_receive_count: 3,
        max_deliveries: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--max-depth" => {
                options.max_depth = Some(value()?.parse().map_err(|e| format!("--max-depth: {e}"))?)
            }
            "--mode" => options.mode = Some(value()?.parse().map_err(|e| format!("--mode: {e}"))?),
            "--max-receive-count" => {
                options.max_receive_count = value()?
                    .parse()
                    .map_err(|e| format!("--max-receive-count: {e}"))?
            }
            "--max-deliveries" => {
                options.max_deliveries = value()?
                    .parse()
                    .map_err(|e| format!("--max-deliveries: {e}"))?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: local_loop [--max-depth N] [--mode terminate|observe|allow] \
                     [--max-receive-count N] [--max-deliveries N]"
                        .into(),
                )
            }
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::WARN)
        .init();
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };

    // Code settings win; anything unset comes from LOOP_GUARD_* variables.
    let mut builder = LoopGuardConfig::builder().function_identity(FUNCTION);
    if let Some(n) = options.max_depth {
        builder = builder.max_depth(n);
    }
    if let Some(mode) = options.mode {
        builder = builder.mode(mode);
    }
    let config = match builder.build_from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "loop guard: function {FUNCTION:?}, max depth {}, mode {}; queue maxReceiveCount {}",
        config.max_depth(),
        config.mode(),
        options.max_receive_count
    );

    let queue = Arc::new(Mutex::new(InMemoryQueue::default()));
    let drops = Arc::new(Mutex::new(0u32));
    let guard = LoopGuardLayer::new(config).metric_sink({
        let drops = drops.clone();
        move |line: &str| {
            *drops.lock().unwrap() += 1;
            println!("    EMF  {line}");
        }
    });
    let handler_runs = Arc::new(Mutex::new(0u32));
    let service = ServiceBuilder::new().layer(guard).service_fn({
        let queue = queue.clone();
        let handler_runs = handler_runs.clone();
        move |event: LambdaEvent<SqsEvent>| {
            let queue = queue.clone();
            let handler_runs = handler_runs.clone();
            async move {
                for record in &event.payload.records {
                    *handler_runs.lock().unwrap() += 1;
                    // Work for one record carries that record's own chain.
                    lambda_loop_guard::for_record(record, async {
                        // The bug: the function writes to the queue that triggers it.
                        let next = queue.lock().unwrap().send(format!(
                            "follow-up of {}",
                            record.message_id.as_deref().unwrap_or("?")
                        ));
                        let lineage = Chain::current().map(|c| c.lineage().to_string());
                        println!(
                            "    handler ran for {}, sent {next} carrying {}",
                            record.message_id.as_deref().unwrap_or("?"),
                            lineage.as_deref().unwrap_or("nothing (guard off)")
                        );
                    })
                    .await;
                }
                Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
            }
        }
    });

    let first = queue.lock().unwrap().send("the first order".into());
    println!("seeded {first}: a message with no lineage, as a user request would send");

    let mut deliveries = 0;
    let mut deleted = 0;
    while deliveries < options.max_deliveries {
        let Some(message) = queue.lock().unwrap().receive() else {
            break;
        };
        deliveries += 1;
        let carried = message
            .attributes
            .get(KEY)
            .and_then(|a| a.string_value.clone())
            .unwrap_or_else(|| "-".into());
        println!(
            "delivery {deliveries}: {} (receive {}), loop-guard attribute {carried}",
            message.id, message.receive_count
        );

        let mut record = SqsMessage::default();
        record.message_id = Some(message.id.clone());
        record.body = Some(message.body.clone());
        record.event_source = Some("aws:sqs".into());
        record.message_attributes = message.attributes.clone();
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let mut context = Context::default();
        context.request_id = format!("req-{deliveries}");
        context.xray_trace_id = Some("Root=1-6740a1b2-0123456789abcdef01234567;Sampled=1".into());

        let failed = match service
            .clone()
            .oneshot(LambdaEvent::new(event, context))
            .await
        {
            Ok(response) => response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == message.id),
            Err(e) => {
                println!("    invocation failed: {e}");
                true
            }
        };
        let mut q = queue.lock().unwrap();
        if !failed {
            deleted += 1;
        } else if message.receive_count >= options.max_receive_count {
            println!(
                "    {} reached maxReceiveCount: moved to the DLQ",
                message.id
            );
            q.dead_letters.push(message);
        } else {
            println!(
                "    {} reported as a batch item failure: SQS will redeliver it",
                message.id
            );
            q.visible.push_back(message);
        }
    }

    let q = queue.lock().unwrap();
    let runs = *handler_runs.lock().unwrap();
    let drop_lines = *drops.lock().unwrap();
    let in_flight = q.visible.len() as u32;
    let lost = q.sent - deleted - q.dead_letters.len() as u32 - in_flight;
    println!();
    println!("summary");
    println!("  deliveries        {deliveries}");
    println!("  handler runs      {runs}");
    println!("  drop metric lines {drop_lines}");
    println!("  messages sent     {}", q.sent);
    println!("  processed+deleted {deleted}");
    println!(
        "  in the DLQ        {} {:?}",
        q.dead_letters.len(),
        q.dead_letters.iter().map(|m| &m.id).collect::<Vec<_>>()
    );
    println!("  still in queue    {in_flight}");
    println!("  lost              {lost}");
    if in_flight > 0 {
        println!(
            "  the loop was NOT stopped: it ran until --max-deliveries {}",
            options.max_deliveries
        );
    } else {
        println!("  the loop stopped after {runs} handler runs; nothing was lost");
    }
    ExitCode::SUCCESS
}
