//! Step Functions: a state machine whose Lambda task starts the same state
//! machine again loops through executions.
//!
//! * Stamp (feature `stepfunctions`): `StartExecution` and
//!   `StartSyncExecution` carry our field in `traceHeader` (the caller's,
//!   else the invocation's incoming one; none is invented, and a header over
//!   the 256 characters the API accepts is left as it was) and, opt-in
//!   ([`stamp_stepfunctions_input`](crate::LoopGuardInterceptor::stamp_stepfunctions_input)),
//!   the `loop-guard` key in a JSON-object `input`.
//! * Read: a Lambda task receives the state's input as its payload (the
//!   `arn:aws:states:::lambda:invoke` integration with `"Payload.$": "$"`,
//!   or a function ARN as the `Resource`): the key arrives at the top of
//!   the payload, where [`AsyncPayloadLayer`](crate::AsyncPayloadLayer)
//!   (on the runtime with [`run`](crate::run)) moves it out before the
//!   handler deserializes it, and the guard reads it like any invocation's.
//!   States that reshape the input must pass the key on. The trace header
//!   reaches tasks only with X-Ray tracing on: the input key is the
//!   dependable carrier.
//! * Drop: the task fails with `RecursiveInvocationException` (a `Retry`
//!   on `States.ALL` would retry it: exclude that error), and the
//!   execution fails with it unless a `Catch` handles it.

#[cfg(feature = "stepfunctions")]
pub(crate) mod stamp;
