//! The audit trail: one record per mutating request and per refused connection,
//! with target `audit` and the fields `uid`, `action`, `detail` and `outcome`
//! (journal fields `SHIPOTE_UID`, `SHIPOTE_ACTION`, `SHIPOTE_DETAIL`,
//! `SHIPOTE_OUTCOME`).

use shipote_protocol::{Request, Response};

/// Longest detail recorded, in characters; longer ones are cut with `…`.
pub const MAX_DETAIL_CHARS: usize = 200;

/// The audit action and detail of a mutating request; `None` for reads.
pub fn action_of(request: &Request) -> Option<(&'static str, String)> {
    let a = match request {
        Request::WorkspaceCreate { spec } => ("workspace.create", format!("label={}", spec.label)),
        Request::WorkspaceStop { id, grace_ms } => {
            ("workspace.stop", format!("id={id} grace_ms={grace_ms}"))
        }
        Request::Run {
            workspace, exec, ..
        } => ("command.run", format!("workspace={workspace} exec={exec}")),
        Request::PipelineRun { spec, tap, .. } => (
            "pipeline.run",
            format!(
                "workspace={} label={} tap={tap}",
                spec.workspace, spec.label
            ),
        ),
        Request::PipelineSave { name, .. } => ("pipeline.save", format!("name={name}")),
        Request::PipelineDrop { name } => ("pipeline.drop", format!("name={name}")),
        Request::PipelineRunSaved { name, tap, .. } => {
            ("pipeline.run_saved", format!("name={name} tap={tap}"))
        }
        Request::PipelineStop { pipeline, grace_ms } => (
            "pipeline.stop",
            format!("pipeline={pipeline} grace_ms={grace_ms}"),
        ),
        Request::FlowDrop { pipeline } => ("flow.drop", format!("pipeline={pipeline}")),
        _ => return None,
    };
    Some(a)
}

/// `ok`, or `error: <message>`.
pub fn outcome_of(response: &Response) -> String {
    match response {
        Response::Error { message, .. } => format!("error: {message}"),
        _ => "ok".to_owned(),
    }
}

/// Makes client-supplied text safe for one log line: control characters
/// escaped, length bounded.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL_CHARS + 8));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_DETAIL_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Records one audited action.
pub fn record(uid: u32, action: &str, detail: &str, outcome: &str) {
    let detail = sanitize(detail);
    let outcome = sanitize(outcome);
    tracing::info!(
        target: "audit",
        uid,
        action,
        detail = %detail,
        outcome = %outcome,
        "{action} by uid {uid}: {detail} ({outcome})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipote_protocol::{ErrorCode, WorkspaceSpec};

    #[test]
    fn reads_are_not_audited() {
        assert!(action_of(&Request::Ping).is_none());
        assert!(action_of(&Request::Health).is_none());
        assert!(action_of(&Request::FlowList).is_none());
    }

    #[test]
    fn create_is_audited_with_label() {
        let (action, detail) = action_of(&Request::WorkspaceCreate {
            spec: WorkspaceSpec::new("web"),
        })
        .unwrap();
        assert_eq!(action, "workspace.create");
        assert_eq!(detail, "label=web");
    }

    #[test]
    fn hostile_text_is_escaped_and_bounded() {
        assert_eq!(sanitize("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        let long = "x".repeat(10_000);
        assert_eq!(sanitize(&long).chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn outcome() {
        assert_eq!(outcome_of(&Response::Pong), "ok");
        assert_eq!(
            outcome_of(&Response::error(ErrorCode::Invalid, "bad")),
            "error: bad"
        );
    }
}
