//! The audit trail: one record per mutating request and per refused connection,
//! with target `audit` and the fields `uid`, `action`, `detail` and `outcome`
//! (journal fields `SHIPOTE_UID`, `SHIPOTE_ACTION`, `SHIPOTE_DETAIL`,
//! `SHIPOTE_OUTCOME`).

use shipote_protocol::{Request, Response};

/// Longest detail recorded, in characters; longer ones are cut with `…`.
pub const MAX_DETAIL_CHARS: usize = 200;

/// The audit action and detail of a mutating request; `None` for reads.
pub fn action_of(request: &Request) -> Option<(&'static str, Detail)> {
    let d = Detail::new();
    let a = match request {
        Request::WorkspaceCreate { spec } => ("workspace.create", d.kv("label", &spec.label)),
        Request::WorkspaceStop { id, grace_ms } => {
            ("workspace.stop", d.kv("id", id).kv("grace_ms", grace_ms))
        }
        Request::Run {
            workspace, exec, ..
        } => ("command.run", d.kv("workspace", workspace).kv("exec", exec)),
        Request::PipelineRun { spec, tap, .. } => (
            "pipeline.run",
            d.kv("workspace", spec.workspace)
                .kv("label", &spec.label)
                .kv("tap", tap),
        ),
        Request::PipelineSave { name, .. } => ("pipeline.save", d.kv("name", name)),
        Request::PipelineDrop { name } => ("pipeline.drop", d.kv("name", name)),
        Request::PipelineRunSaved { name, tap, .. } => {
            ("pipeline.run_saved", d.kv("name", name).kv("tap", tap))
        }
        Request::PipelineStop { pipeline, grace_ms } => (
            "pipeline.stop",
            d.kv("pipeline", pipeline).kv("grace_ms", grace_ms),
        ),
        Request::FlowDrop { pipeline } => ("flow.drop", d.kv("pipeline", pipeline)),
        Request::CommandStop {
            workspace,
            command,
            grace_ms,
        } => (
            "command.stop",
            d.kv("workspace", workspace)
                .kv("command", command)
                .kv("grace_ms", grace_ms),
        ),
        Request::CommandRestart {
            workspace,
            command,
            grace_ms,
        } => (
            "command.restart",
            d.kv("workspace", workspace)
                .kv("command", command)
                .kv("grace_ms", grace_ms),
        ),
        Request::CommandSignal {
            workspace,
            command,
            signal,
        } => (
            "command.signal",
            d.kv("workspace", workspace)
                .kv("command", command)
                .kv("signal", signal),
        ),
        _ => return None,
    };
    Some(a)
}

/// An audit record's detail: `key="value"` pairs, every value quoted and
/// escaped, so that no client-supplied text can pose as another field or
/// another record (`exec="true (ok) uid=0 action=\"workspace.stop\""` stays
/// one value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail(String);

impl Detail {
    /// An empty detail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key="value"`; `key` is ours (a literal), `value` may be anyone's.
    pub fn kv(mut self, key: &'static str, value: impl std::fmt::Display) -> Self {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&quote(&value.to_string()));
        self
    }

    /// The rendered pairs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `ok`, or `error: <message>`.
pub fn outcome_of(response: &Response) -> String {
    match response {
        Response::Error { message, .. } => format!("error: {message}"),
        _ => "ok".to_owned(),
    }
}

/// Whether `c` must not reach a log line as itself: control characters, line
/// and paragraph separators, and the invisible format characters that reorder
/// or hide text (bidi overrides and isolates, zero-width characters, BOM).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}')
}

/// Client-supplied text as one quoted value: `"` and `\` escaped, every
/// unsafe character as `\u{..}`, at most [`MAX_DETAIL_CHARS`] characters.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL_CHARS + 8) + 2);
    out.push('"');
    for (i, c) in text.chars().enumerate() {
        if i == MAX_DETAIL_CHARS {
            out.push('…');
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Records one audited action. Every sink (journal fields, the message, the
/// stderr line) gets the same quoted values.
pub fn record(uid: u32, action: &str, detail: &Detail, outcome: &str) {
    let outcome = quote(outcome);
    tracing::info!(
        target: "audit",
        uid,
        action,
        detail = %detail,
        outcome = %outcome,
        "{action} by uid {uid}: {detail} outcome={outcome}"
    );
}

/// At most this many records of a flood kind (bad frames, turn-aways) per
/// second; the rest are counted and the count goes in the next record.
pub const FLOOD_RECORDS_PER_SEC: u64 = 10;

/// Records a refused connection or frame, rate-limited: a flood of them
/// cannot fill the journal. Returns whether it was recorded.
pub fn record_flood(uid: u32, action: &str, detail: Detail, outcome: &str) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    static WINDOW: Mutex<(u64, u64)> = Mutex::new((0, 0));
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let allowed = {
        let mut w = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != second {
            *w = (second, 0);
        }
        w.1 += 1;
        w.1 <= FLOOD_RECORDS_PER_SEC
    };
    if !allowed {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
    let detail = if suppressed > 0 {
        detail.kv("suppressed_before", suppressed)
    } else {
        detail
    };
    record(uid, action, &detail, outcome);
    true
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
        assert_eq!(detail.as_str(), "label=\"web\"");
    }

    #[test]
    fn hostile_text_is_escaped_quoted_and_bounded() {
        assert_eq!(quote("a\nb\x1b[31m"), "\"a\\nb\\u{1b}[31m\"");
        assert_eq!(
            quote("\u{202e}txt.exe\u{2028}x"),
            "\"\\u{202e}txt.exe\\u{2028}x\""
        );
        let long = "x".repeat(10_000);
        assert_eq!(quote(&long).chars().count(), MAX_DETAIL_CHARS + 3);
    }

    #[test]
    fn a_forged_record_stays_inside_its_value() {
        let exec = r#"true (ok) uid=0 action="workspace.stop" detail=id=X"#;
        let d = Detail::new().kv("exec", exec);
        assert_eq!(
            d.as_str(),
            r#"exec="true (ok) uid=0 action=\"workspace.stop\" detail=id=X""#
        );
        // One value: the only unescaped quotes are its own two.
        let unescaped = d
            .as_str()
            .match_indices('"')
            .filter(|(i, _)| d.as_str().as_bytes()[i - 1] != b'\\')
            .count();
        assert_eq!(unescaped, 2);
    }

    #[test]
    fn floods_are_rate_limited() {
        let recorded = (0..1000)
            .filter(|_| record_flood(1, "connection.test", Detail::new(), "refused"))
            .count() as u64;
        // Within one or two wall-clock seconds.
        assert!(recorded <= 2 * FLOOD_RECORDS_PER_SEC, "{recorded}");
        assert!(recorded >= 1);
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
