//! `shipote top`: a live, full-screen view of the daemon (ratatui on
//! crossterm). One `Top` request per refresh brings every workspace's latest
//! sample, limits and history (the daemon's sampler's figures: nothing is
//! read for them) and the selected workspace's commands with their own usage,
//! each from its `cmd-<id>` leaf. Flows and the followed log are two more
//! small requests. Keys act on the selection: stop, kill, restart a command,
//! stop a workspace (each asks to confirm), follow the log, `/` to filter.

use super::{Failure, Session};

mod draw;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;
use shipote_protocol::{
    CommandUsage, FlowThroughputInfo, LogStream, Request, Response, TopWorkspace, Ulid, WorkspaceId,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// `shipote top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Time between refreshes, e.g. 1s, 500ms (at least 200ms).
    #[arg(long, default_value = "1s", value_parser = super::units::parse_duration_ms, value_name = "DURATION")]
    pub interval: u64,
}

/// How many samples of history each workspace's sparkline shows.
const HISTORY: u32 = 30;
/// Lines of the followed log kept for the pane.
const LOG_LINES: usize = 500;
/// Bytes of a newly followed log shown at first.
const LOG_TAIL: u64 = 16 << 10;
/// Most bytes of log read per refresh.
const LOG_READ: u64 = 256 << 10;

/// Which table the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Focus {
    Workspaces,
    Commands,
}

/// Something the user asked for that changes the daemon's state; asked to
/// confirm first.
#[derive(Debug, Clone)]
enum Action {
    StopCommand(WorkspaceId, Ulid, String),
    KillCommand(WorkspaceId, Ulid, String),
    RestartCommand(WorkspaceId, Ulid, String),
    StopWorkspace(WorkspaceId, String),
}

impl Action {
    fn question(&self) -> String {
        match self {
            Action::StopCommand(_, _, l) => {
                format!("stop command {l} (SIGTERM, then SIGKILL after 1s; no restart)?")
            }
            Action::KillCommand(_, _, l) => {
                format!("send SIGKILL to command {l} (its restart policy stays)?")
            }
            Action::RestartCommand(_, _, l) => format!("restart command {l}?"),
            Action::StopWorkspace(_, l) => format!("stop workspace {l} and every command in it?"),
        }
    }
}

/// The followed command's log.
#[derive(Debug, Default)]
struct Followed {
    target: Option<(WorkspaceId, Ulid)>,
    next: Option<u64>,
    lines: VecDeque<String>,
    partial: String,
    running: bool,
}

impl Followed {
    fn push(&mut self, bytes: &[u8]) {
        self.partial.push_str(&String::from_utf8_lossy(bytes));
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            self.lines
                .push_back(line.trim_end_matches(['\n', '\r']).to_owned());
            if self.lines.len() > LOG_LINES {
                self.lines.pop_front();
            }
        }
    }
}

/// Everything shown, and what the keys act on.
#[derive(Debug)]
struct App {
    workspaces: Vec<TopWorkspace>,
    commands: Vec<CommandUsage>,
    /// Each command's CPU time at the previous refresh, for its CPU %.
    cpu_before: HashMap<Ulid, (Instant, u64)>,
    cpu_percent: HashMap<Ulid, f64>,
    flows: Vec<(String, String, FlowThroughputInfo)>,
    selected_ws: Option<WorkspaceId>,
    ws_state: TableState,
    selected_cmd: Option<Ulid>,
    cmd_state: TableState,
    focus: Focus,
    follow: bool,
    log: Followed,
    filter: String,
    editing_filter: bool,
    help: bool,
    confirm: Option<Action>,
    status: Option<(String, Instant)>,
    unreachable: Option<String>,
}

impl App {
    fn new() -> Self {
        Self {
            workspaces: Vec::new(),
            commands: Vec::new(),
            cpu_before: HashMap::new(),
            cpu_percent: HashMap::new(),
            flows: Vec::new(),
            selected_ws: None,
            ws_state: TableState::default(),
            selected_cmd: None,
            cmd_state: TableState::default(),
            focus: Focus::Workspaces,
            follow: true,
            log: Followed::default(),
            filter: String::new(),
            editing_filter: false,
            help: false,
            confirm: None,
            status: None,
            unreachable: None,
        }
    }

    /// The workspaces the filter lets through.
    fn visible(&self) -> Vec<&TopWorkspace> {
        let f = self.filter.to_lowercase();
        self.workspaces
            .iter()
            .filter(|w| {
                f.is_empty()
                    || w.summary.label.to_lowercase().contains(&f)
                    || w.summary.id.to_string().to_lowercase().starts_with(&f)
            })
            .collect()
    }

    /// Keeps the selections on the same workspace and command across
    /// refreshes (by id), or on the first one.
    fn reselect(&mut self) {
        let ids: Vec<WorkspaceId> = self.visible().iter().map(|w| w.summary.id).collect();
        let i = self
            .selected_ws
            .and_then(|id| ids.iter().position(|w| *w == id))
            .or((!ids.is_empty()).then_some(0));
        self.ws_state.select(i);
        let now = i.map(|i| ids[i]);
        if now != self.selected_ws {
            // Another workspace: its commands come with the next refresh.
            self.commands.clear();
            self.selected_cmd = None;
        }
        self.selected_ws = now;
        let cmds: Vec<Ulid> = self.commands.iter().map(|c| c.info.id).collect();
        let j = self
            .selected_cmd
            .and_then(|id| cmds.iter().position(|c| *c == id))
            .or((!cmds.is_empty()).then_some(0));
        self.cmd_state.select(j);
        self.selected_cmd = j.map(|j| cmds[j]);
    }

    fn selected_ws_label(&self) -> Option<String> {
        let id = self.selected_ws?;
        self.workspaces
            .iter()
            .find(|w| w.summary.id == id)
            .map(|w| w.summary.label.clone())
    }

    fn selected_cmd_label(&self) -> Option<String> {
        let id = self.selected_cmd?;
        self.commands
            .iter()
            .find(|c| c.info.id == id)
            .map(|c| c.info.label.clone())
    }

    fn move_selection(&mut self, down: bool) {
        match self.focus {
            Focus::Workspaces => {
                let ids: Vec<WorkspaceId> = self.visible().iter().map(|w| w.summary.id).collect();
                let Some(next) = step(self.ws_state.selected(), ids.len(), down) else {
                    return;
                };
                if self.selected_ws != Some(ids[next]) {
                    self.selected_ws = Some(ids[next]);
                    self.ws_state.select(Some(next));
                    self.commands.clear();
                    self.selected_cmd = None;
                    self.cmd_state.select(None);
                }
            }
            Focus::Commands => {
                let Some(next) = step(self.cmd_state.selected(), self.commands.len(), down) else {
                    return;
                };
                self.cmd_state.select(Some(next));
                self.selected_cmd = Some(self.commands[next].info.id);
            }
        }
    }

    fn say(&mut self, text: String) {
        self.status = Some((text, Instant::now()));
    }
}

/// The index after (or before) `at` in a list of `len`.
fn step(at: Option<usize>, len: usize, down: bool) -> Option<usize> {
    if len == 0 {
        return None;
    }
    Some(match (at, down) {
        (None, _) => 0,
        (Some(i), true) => (i + 1).min(len - 1),
        (Some(i), false) => i.saturating_sub(1),
    })
}

/// Restores the terminal however `top` ends (also on a panic).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

/// Runs `shipote top` until `q`.
pub async fn run(s: &mut Session, a: TopArgs) -> Result<String, Failure> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::Input(
            "shipote top needs a terminal; for scripts use shipote ws stats --json or shipote ps --json"
                .into(),
        ));
    }
    let interval = Duration::from_millis(a.interval.max(200));
    let mut app = App::new();
    // The first answer before the screen changes: no daemon, no full screen.
    refresh(s, &mut app).await?;

    crossterm::terminal::enable_raw_mode()
        .map_err(|e| Failure::Input(format!("cannot set the terminal to raw mode: {e}")))?;
    let guard = TerminalGuard;
    crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)
        .map_err(|e| Failure::Input(format!("cannot use the alternate screen: {e}")))?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
            .map_err(|e| Failure::Input(format!("cannot draw on this terminal: {e}")))?;

    // Keys come from a thread (crossterm's read blocks); the loop waits for
    // a key or the next refresh, whichever comes first.
    let (keys_tx, mut keys) = tokio::sync::mpsc::channel::<Event>(64);
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(e) => {
                if keys_tx.blocking_send(e).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    });
    let mut next_refresh = tokio::time::Instant::now() + interval;
    loop {
        terminal
            .draw(|f| draw::draw(f, &mut app))
            .map_err(|e| Failure::Input(format!("cannot draw: {e}")))?;
        tokio::select! {
            _ = tokio::time::sleep_until(next_refresh) => {
                next_refresh = tokio::time::Instant::now() + interval;
                refresh_or_note(s, &mut app).await;
            }
            key = keys.recv() => {
                let Some(e) = key else { break };
                match on_event(&mut app, e) {
                    Step::Quit => break,
                    Step::Draw => {}
                    Step::Refresh => {
                        refresh_or_note(s, &mut app).await;
                        next_refresh = tokio::time::Instant::now() + interval;
                    }
                    Step::Act(action) => {
                        act(s, &mut app, action).await;
                        refresh_or_note(s, &mut app).await;
                        next_refresh = tokio::time::Instant::now() + interval;
                    }
                }
            }
        }
    }
    drop(terminal);
    drop(guard);
    Ok(String::new())
}

/// What a key asks for.
enum Step {
    Quit,
    Draw,
    Refresh,
    Act(Action),
}

fn on_event(app: &mut App, e: Event) -> Step {
    let Event::Key(KeyEvent {
        code,
        modifiers,
        kind,
        ..
    }) = e
    else {
        // A resize: the next draw fits the new size.
        return Step::Draw;
    };
    if kind == KeyEventKind::Release {
        return Step::Draw;
    }
    if modifiers.contains(KeyModifiers::CONTROL) && code == KeyCode::Char('c') {
        return Step::Quit;
    }
    if let Some(action) = app.confirm.take() {
        return match code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Step::Act(action),
            _ => {
                app.say("cancelled".into());
                Step::Draw
            }
        };
    }
    if app.editing_filter {
        match code {
            KeyCode::Enter => app.editing_filter = false,
            KeyCode::Esc => {
                app.editing_filter = false;
                app.filter.clear();
            }
            KeyCode::Backspace => {
                app.filter.pop();
            }
            KeyCode::Char(c) => app.filter.push(c),
            _ => {}
        }
        let before = app.selected_ws;
        app.reselect();
        return if app.selected_ws == before {
            Step::Draw
        } else {
            Step::Refresh
        };
    }
    if app.help {
        app.help = false;
        return Step::Draw;
    }
    let ws = app.selected_ws.zip(app.selected_ws_label());
    let cmd = app
        .selected_ws
        .zip(app.selected_cmd)
        .zip(app.selected_cmd_label());
    let ask = |app: &mut App, a: Action| {
        app.confirm = Some(a);
        Step::Draw
    };
    match code {
        KeyCode::Char('q') => Step::Quit,
        KeyCode::Esc => {
            app.filter.clear();
            app.reselect();
            Step::Refresh
        }
        KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => {
            app.help = true;
            Step::Draw
        }
        KeyCode::Tab | KeyCode::BackTab => {
            app.focus = match app.focus {
                Focus::Workspaces => Focus::Commands,
                Focus::Commands => Focus::Workspaces,
            };
            Step::Draw
        }
        KeyCode::Left => {
            app.focus = Focus::Workspaces;
            Step::Draw
        }
        KeyCode::Right | KeyCode::Enter => {
            app.focus = Focus::Commands;
            Step::Draw
        }
        KeyCode::Up => {
            app.move_selection(false);
            Step::Refresh
        }
        KeyCode::Down => {
            app.move_selection(true);
            Step::Refresh
        }
        KeyCode::Char('/') => {
            app.editing_filter = true;
            Step::Draw
        }
        KeyCode::Char('f') => {
            app.follow = !app.follow;
            app.say(
                if app.follow {
                    "following the log"
                } else {
                    "log paused"
                }
                .into(),
            );
            Step::Draw
        }
        KeyCode::Char('s') => match cmd {
            Some(((w, c), l)) => ask(app, Action::StopCommand(w, c, l)),
            None => {
                app.say("no command selected".into());
                Step::Draw
            }
        },
        KeyCode::Char('k') | KeyCode::Char('K') => match cmd {
            Some(((w, c), l)) => ask(app, Action::KillCommand(w, c, l)),
            None => {
                app.say("no command selected".into());
                Step::Draw
            }
        },
        KeyCode::Char('r') => match cmd {
            Some(((w, c), l)) => ask(app, Action::RestartCommand(w, c, l)),
            None => {
                app.say("no command selected".into());
                Step::Draw
            }
        },
        KeyCode::Char('S') => match ws {
            Some((w, l)) => ask(app, Action::StopWorkspace(w, l)),
            None => {
                app.say("no workspace selected".into());
                Step::Draw
            }
        },
        _ => Step::Draw,
    }
}

async fn act(s: &mut Session, app: &mut App, action: Action) {
    const GRACE_MS: u64 = 1000;
    let (request, done) = match &action {
        Action::StopCommand(w, c, l) => (
            Request::CommandStop {
                workspace: *w,
                command: *c,
                grace_ms: GRACE_MS,
            },
            format!("stopped command {l}"),
        ),
        Action::KillCommand(w, c, l) => (
            Request::CommandSignal {
                workspace: *w,
                command: *c,
                signal: libc::SIGKILL,
            },
            format!("sent SIGKILL to command {l}"),
        ),
        Action::RestartCommand(w, c, l) => (
            Request::CommandRestart {
                workspace: *w,
                command: *c,
                grace_ms: GRACE_MS,
            },
            format!("restarted command {l}"),
        ),
        Action::StopWorkspace(w, l) => (
            Request::WorkspaceStop {
                id: *w,
                grace_ms: GRACE_MS,
            },
            format!("stopped workspace {l}"),
        ),
    };
    match s.call(&request).await {
        Ok(_) => app.say(done),
        Err(Failure::Daemon { message, .. }) => app.say(format!("refused: {message}")),
        Err(_) => app.say("the daemon did not answer".into()),
    }
}

/// A refresh; a daemon that went away is said on screen, and asked again
/// at the next one (it may be restarting).
async fn refresh_or_note(s: &mut Session, app: &mut App) {
    match refresh(s, app).await {
        Ok(()) => app.unreachable = None,
        Err(Failure::Transport(e)) => {
            app.unreachable = Some(format!(
                "shipoted does not answer at {}; trying again",
                s.explain(&e).await
            ));
            let _ = s.reconnect(Duration::ZERO).await;
        }
        Err(Failure::Daemon { message, .. }) => app.say(message),
        Err(_) => app.say("the daemon sent an unexpected answer".into()),
    }
}

async fn refresh(s: &mut Session, app: &mut App) -> Result<(), Failure> {
    let (workspaces, commands) = match s
        .call(&Request::Top {
            selected: app.selected_ws,
            history: HISTORY,
        })
        .await?
    {
        Response::Top {
            workspaces,
            commands,
        } => (workspaces, commands),
        other => return Err(Failure::Unexpected(Box::new(other))),
    };
    let now = Instant::now();
    let mut before = HashMap::with_capacity(commands.len());
    app.cpu_percent.clear();
    for c in &commands {
        if let Some(usec) = c.cpu_usec {
            if let Some((then, prev)) = app.cpu_before.get(&c.info.id) {
                let wall = now.duration_since(*then).as_micros() as f64;
                if wall > 0.0 && usec >= *prev {
                    app.cpu_percent
                        .insert(c.info.id, (usec - prev) as f64 * 100.0 / wall);
                }
            }
            before.insert(c.info.id, (now, usec));
        }
    }
    app.cpu_before = before;
    app.workspaces = workspaces;
    let first_answer = app.selected_ws.is_none();
    app.commands = commands;
    app.reselect();
    if first_answer && app.selected_ws.is_some() {
        // The first workspace was just selected: its commands now.
        return Box::pin(refresh(s, app)).await;
    }

    let flows = match s.call(&Request::FlowThroughput).await? {
        Response::FlowThroughput { items } => items,
        other => return Err(Failure::Unexpected(Box::new(other))),
    };
    app.flows.clear();
    if !flows.is_empty() {
        let mut names = HashMap::new();
        for p in super::pipeline::running(s).await? {
            for t in &p.taps {
                if let Some(socket) = &t.socket {
                    names.insert(socket.clone(), (p.label.clone(), t.name()));
                }
            }
        }
        for f in flows {
            let (pipeline, edge) = names
                .get(&f.socket)
                .cloned()
                .unwrap_or_else(|| ("-".into(), f.socket.display().to_string()));
            app.flows.push((pipeline, edge, f));
        }
    }

    if app.follow {
        follow_log(s, app).await?;
    }
    Ok(())
}

async fn follow_log(s: &mut Session, app: &mut App) -> Result<(), Failure> {
    let target = app.selected_ws.zip(app.selected_cmd);
    if app.log.target != target {
        app.log = Followed {
            target,
            ..Followed::default()
        };
    }
    let Some((workspace, command)) = target else {
        return Ok(());
    };
    let request = Request::CommandLogsFrom {
        workspace,
        command,
        stream: LogStream::Both,
        from: app.log.next,
        tail_bytes: LOG_TAIL,
        max_bytes: LOG_READ,
    };
    match s.call(&request).await {
        Ok(Response::CommandLogsFrom {
            bytes,
            next,
            running,
            ..
        }) => {
            let mut bytes = &bytes[..];
            if app.log.next.is_none() {
                // A tail starts mid-line: from the first whole line on.
                if let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
                    if next as usize > bytes.len() {
                        bytes = &bytes[nl + 1..];
                    }
                }
            }
            app.log.push(bytes);
            app.log.next = Some(next);
            app.log.running = running;
            Ok(())
        }
        Ok(other) => Err(Failure::Unexpected(Box::new(other))),
        // The command or its log is gone: nothing to follow.
        Err(Failure::Daemon { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_followed_log_keeps_whole_lines_and_a_bounded_count() {
        let mut f = Followed::default();
        f.push(b"one\ntw");
        assert_eq!(f.lines, ["one"]);
        f.push(b"o\r\nthree\n");
        assert_eq!(f.lines, ["one", "two", "three"]);
        for i in 0..LOG_LINES * 2 {
            f.push(format!("{i}\n").as_bytes());
        }
        assert_eq!(f.lines.len(), LOG_LINES);
        assert_eq!(f.lines.back().unwrap(), &(LOG_LINES * 2 - 1).to_string());
    }

    #[test]
    fn the_selection_steps_within_the_list() {
        assert_eq!(step(None, 0, true), None);
        assert_eq!(step(None, 3, true), Some(0));
        assert_eq!(step(Some(2), 3, true), Some(2));
        assert_eq!(step(Some(0), 3, false), Some(0));
        assert_eq!(step(Some(1), 3, false), Some(0));
    }
}
