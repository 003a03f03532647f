//! `shipote top`'s screen: the panes, drawn from the [`App`] state each
//! refresh or key (ratatui diffs what reaches the terminal).

use super::{App, Focus};
use crate::client::render::{human_bytes, sparkline};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use shipote_protocol::CommandUsage;
use std::time::Duration;

/// `1 workspace`, `2 workspaces`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn percent(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

pub(super) fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let [title, main, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(8),
        Constraint::Length(1),
    ])
    .areas(area);
    let [ws_area, cmd_area, bottom] = Layout::vertical([
        Constraint::Percentage(38),
        Constraint::Percentage(30),
        Constraint::Percentage(32),
    ])
    .areas(main);
    let [log_area, flow_area] = if bottom.width >= 100 {
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom)
    } else {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom)
    };

    let alive: u32 = app.workspaces.iter().map(|w| w.summary.commands).sum();
    let mut head = vec![
        Span::styled("shipote top", Style::new().bold()),
        Span::raw(format!(
            "  {}, {}",
            count(app.workspaces.len(), "workspace"),
            count(alive as usize, "running command")
        )),
    ];
    if !app.filter.is_empty() || app.editing_filter {
        head.push(Span::raw(format!("  filter: {}", app.filter)));
        if app.editing_filter {
            head.push(Span::styled(
                "_",
                Style::new().add_modifier(Modifier::SLOW_BLINK),
            ));
        }
    }
    f.render_widget(Paragraph::new(Line::from(head)), title);

    draw_workspaces(f, app, ws_area);
    draw_commands(f, app, cmd_area);
    draw_log(f, app, log_area);
    draw_flows(f, app, flow_area);

    let bottom_line = if let Some(a) = &app.confirm {
        Line::from(vec![
            Span::styled(a.question(), Style::new().bold()),
            Span::raw("  y to confirm, any other key cancels"),
        ])
    } else if let Some(msg) = &app.unreachable {
        Line::from(Span::styled(msg.clone(), Style::new().red().bold()))
    } else if let Some((msg, _)) = app
        .status
        .as_ref()
        .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
    {
        Line::from(Span::raw(msg.clone()))
    } else if app.editing_filter {
        Line::from("type to filter workspaces by label or id; Enter keeps it, Esc clears it")
    } else {
        Line::from(
            "q:quit tab:pane \u{2191}\u{2193}:move s:stop k:kill r:restart S:stop ws /:filter ?:help",
        )
    };
    f.render_widget(Paragraph::new(bottom_line), keys);

    if app.help {
        draw_help(f, area);
    }
}

fn pane(title: String, focused: bool) -> Block<'static> {
    let b = Block::new().borders(Borders::ALL).title(title);
    if focused {
        b.border_style(Style::new().cyan())
    } else {
        b
    }
}

fn draw_workspaces(f: &mut Frame, app: &mut App, area: Rect) {
    let wide = area.width >= 110;
    let spark = if area.width >= 90 { 20 } else { 10 };
    let mut header = vec![
        "LABEL",
        "RSS",
        "MEM LIMIT",
        "CPU",
        "TASKS",
        "TTL",
        "CPU HISTORY",
    ];
    if wide {
        header.push("RSS HISTORY");
    }
    let rows: Vec<Row> = app
        .visible()
        .iter()
        .map(|w| {
            let latest = w.latest.as_ref();
            let limit = match w.mem_limit {
                Some(u64::MAX) | None => "-".to_owned(),
                Some(l) if w.report_only => format!("{} (report)", human_bytes(l)),
                Some(l) => human_bytes(l),
            };
            let tasks = match (latest.and_then(|l| l.tasks), w.tasks_limit) {
                (Some(t), Some(l)) if l != u64::MAX => format!("{t}/{l}"),
                (Some(t), _) => t.to_string(),
                (None, _) => "-".into(),
            };
            let cpu: Vec<u64> = tail(&w.cpu_history, spark)
                .iter()
                .map(|p| (p * 10.0) as u64)
                .collect();
            let mut cells = vec![
                w.summary.label.clone(),
                latest
                    .and_then(|l| l.rss_bytes)
                    .map(human_bytes)
                    .unwrap_or_else(|| "-".into()),
                limit,
                percent(latest.and_then(|l| l.cpu_percent).map(f64::from)),
                tasks,
                w.summary
                    .ttl_left_ms
                    .map(compact_duration)
                    .unwrap_or_else(|| "-".into()),
                sparkline(&cpu),
            ];
            if wide {
                cells.push(sparkline(tail(&w.rss_history, spark)));
            }
            Row::new(cells)
        })
        .collect();
    let empty = rows.is_empty();
    let mut widths = vec![
        Constraint::Min(10),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(spark as u16 + 1),
    ];
    if wide {
        widths.push(Constraint::Length(spark as u16 + 1));
    }
    let title = if app.filter.is_empty() {
        " Workspaces ".to_owned()
    } else {
        format!(" Workspaces matching {:?} ", app.filter)
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold()))
        .row_highlight_style(Style::new().reversed())
        .highlight_symbol(if app.focus == Focus::Workspaces {
            ">"
        } else {
            "*"
        })
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .block(pane(title, app.focus == Focus::Workspaces));
    f.render_stateful_widget(table, area, &mut app.ws_state);
    if empty {
        let inner = Rect {
            y: area.y + 2,
            height: 1,
            x: area.x + 2,
            width: area.width.saturating_sub(4),
        };
        let text = if app.workspaces.is_empty() {
            "no live workspaces; create one with shipote ws create LABEL"
        } else {
            "no workspace matches the filter (Esc clears it)"
        };
        f.render_widget(Paragraph::new(text), inner);
    }
}

/// `1h05m`, `59m50s`, `42s`: a TTL in a narrow column.
fn compact_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn tail<T>(v: &[T], n: usize) -> &[T] {
    &v[v.len().saturating_sub(n)..]
}

fn state(c: &CommandUsage) -> String {
    let i = &c.info;
    if i.alive {
        return if i.pid > 0 && c.rss_bytes.is_some() {
            "running".into()
        } else {
            "restarting".into()
        };
    }
    match (i.exit_status, i.exit_signal) {
        (_, Some(sig)) => signal_name(sig),
        (Some(code), _) => format!("exit {code}"),
        _ => "ended".into(),
    }
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

fn draw_commands(f: &mut Frame, app: &mut App, area: Rect) {
    let title = match app.selected_ws_label() {
        Some(l) => format!(" Commands of {l} "),
        None => " Commands ".into(),
    };
    let rows: Vec<Row> = app
        .commands
        .iter()
        .map(|c| {
            let id = c.info.id.to_string();
            Row::new(vec![
                id[id.len() - 8..].to_owned(),
                c.info.label.clone(),
                state(c),
                if c.info.alive {
                    c.info.pid.to_string()
                } else {
                    "-".into()
                },
                c.info.restarts.to_string(),
                percent(app.cpu_percent.get(&c.info.id).copied()),
                c.rss_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                human_bytes(c.info.log_bytes),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(9),
        Constraint::Min(8),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "ID", "LABEL", "STATE", "PID", "RESTARTS", "CPU", "RSS", "LOGS",
            ])
            .style(Style::new().bold()),
        )
        .row_highlight_style(Style::new().reversed())
        .highlight_symbol(if app.focus == Focus::Commands {
            ">"
        } else {
            "*"
        })
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .block(pane(title, app.focus == Focus::Commands));
    f.render_stateful_widget(table, area, &mut app.cmd_state);
}

fn draw_log(f: &mut Frame, app: &App, area: Rect) {
    let title = match (app.selected_cmd_label(), app.follow) {
        (Some(l), true) => format!(" Log of {l} (following) "),
        (Some(l), false) => format!(" Log of {l} (paused: f) "),
        (None, _) => " Log ".into(),
    };
    let height = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .log
        .lines
        .iter()
        .skip(app.log.lines.len().saturating_sub(height))
        .map(|l| Line::raw(l.clone()))
        .collect();
    f.render_widget(Paragraph::new(lines).block(pane(title, false)), area);
}

fn draw_flows(f: &mut Frame, app: &App, area: Rect) {
    let block = pane(" Flows ".into(), false);
    if app.flows.is_empty() {
        f.render_widget(
            Paragraph::new("no live flows; run a pipeline with --tap")
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let rows: Vec<Row> = app
        .flows
        .iter()
        .map(|(_, edge, i)| {
            Row::new(vec![
                edge.clone(),
                format!("{}/s", human_bytes(i.bytes_per_sec.max(0.0) as u64)),
                human_bytes(i.bytes_total),
                human_bytes(i.dropped_bytes),
            ])
        })
        .collect();
    let widths = [
        Constraint::Min(10),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(9),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["EDGE", "RATE", "TOTAL", "LOST"]).style(Style::new().bold()))
        .block(block);
    f.render_widget(table, area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let text = vec![
        Line::from("shipote top: keys".bold()),
        Line::from(""),
        Line::from("  \u{2191} \u{2193}      move in the focused table"),
        Line::from("  tab      switch between workspaces and commands"),
        Line::from("  s        stop the selected command (no restart)"),
        Line::from("  k        send SIGKILL to the selected command"),
        Line::from("  r        restart the selected command"),
        Line::from("  S        stop the selected workspace"),
        Line::from("  f        follow the command's log, or pause it"),
        Line::from("  /        filter workspaces (Enter keeps, Esc clears)"),
        Line::from("  q        quit"),
        Line::from(""),
        Line::from("Changes ask to confirm with y. Any key closes this."),
    ];
    let w = 60.min(area.width);
    let h = (text.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text).block(Block::new().borders(Borders::ALL).title(" Help ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fit_a_narrow_column() {
        assert_eq!(compact_duration(42_000), "42s");
        assert_eq!(compact_duration(3_590_000), "59m50s");
        assert_eq!(compact_duration(3_900_000), "1h05m");
        assert_eq!(compact_duration(90_000_000), "1d01h");
    }
}
