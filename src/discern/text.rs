//! Detectors for text samples: shebang scripts, leading markers (PGP, PDF, mail
//! and news headers...), markup and HTML templates, JSON/NDJSON, logs, gettext
//! catalogues, source code, tables and YAML. Each looks at a bounded prefix (lines or bytes), never
//! allocates, and answers a [`Guess`] with a confidence on the scale of the module
//! doc.
//!
//! The detectors share one set of line-scanning helpers and are tuned against
//! each other (the order in which they are tried is part of what each one
//! means), so they stay together here; only the source-code detector, one
//! scoring pass over many languages, lives apart (`code.rs`), called at its
//! place in [`detect`].

use super::table::{self, TableShape};
use super::{code, json, Guess, Lens};

/// Lines the line-based detectors look at.
const MAX_LINES: usize = 40;

/// Runs the text detectors in order of how verifiable their evidence is.
pub fn detect(t: &[u8]) -> Guess {
    let lead = skip_ws(t);
    if let Some(g) = shebang(lead) {
        return g;
    }
    if let Some(g) = leading_marker(lead) {
        return g;
    }
    if let Some(g) = markup(lead) {
        return g;
    }
    if let Some(g) = template(lead) {
        return g;
    }
    if let Some(shape) = json::shape(t) {
        return match shape {
            json::Shape::Lines(n) => Guess::own(
                "ndjson",
                "application/x-ndjson",
                Lens::Json,
                if n >= 3 { 0.9 } else { 0.8 },
            ),
            json::Shape::Document { whole, values } => {
                let c = match (whole, values) {
                    (_, 0) => 0.55,
                    (true, _) => 0.9,
                    (false, v) if v >= 3 => 0.85,
                    (false, _) => 0.7,
                };
                Guess::own("json", "application/json", Lens::Json, c)
            }
        };
    }
    if let Some(g) = log(t) {
        return g;
    }
    if let Some(g) = code::detect(t) {
        return g;
    }
    if let Some(g) = toml(t) {
        return g;
    }
    if let Some(g) = markdown(t) {
        return g;
    }
    if let Some(shape) = table::sniff(t) {
        return table_guess(shape);
    }
    if let Some(g) = yaml(t) {
        return g;
    }
    Guess::own("text", "text/plain", Lens::Text, 0.5)
}

/// The guess for a sniffed table.
pub fn table_guess(shape: TableShape) -> Guess {
    let conf = if shape.records >= 5 { 0.85 } else { 0.7 };
    let mut g = if shape.delimiter == b'\t' {
        Guess::own("tsv", "text/tab-separated-values", Lens::Table, conf)
    } else {
        Guess::own("csv", "text/csv", Lens::Table, conf)
    };
    g.table = Some(shape);
    g
}

fn skip_ws(t: &[u8]) -> &[u8] {
    let i = t
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(t.len());
    &t[i..]
}

/// Iterates over at most [`MAX_LINES`] lines, without their `\r`.
fn lines(t: &[u8]) -> impl Iterator<Item = &[u8]> {
    t.split(|&c| c == b'\n')
        .take(MAX_LINES)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Whole lines only: drops the last line when the sample does not end with `\n`,
/// since it may be cut.
fn whole_lines(t: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = if t.ends_with(b"\n") {
        t.len()
    } else {
        t.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1)
    };
    lines(&t[..end]).filter(|l| !l.is_empty())
}

pub(super) fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

/// Substring search; jumps between occurrences of the needle's first byte, which
/// is several times faster than comparing every window on long lines.
pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut i = 0;
    while let Some(p) = hay[i..].iter().position(|&c| c == first) {
        let at = i + p;
        if hay[at + 1..].starts_with(rest) {
            return true;
        }
        i = at + 1;
    }
    false
}

/// `#!` scripts: the interpreter decides (through `env` too).
fn shebang(t: &[u8]) -> Option<Guess> {
    let rest = t.strip_prefix(b"#!")?;
    let line = rest.split(|&c| c == b'\n').next().unwrap_or(rest);
    let mut words = line
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let mut prog = words.next()?;
    prog = prog.rsplit(|&c| c == b'/').next().unwrap_or(prog);
    if prog == b"env" {
        // Skip env's own options (`env -S python3 -u`).
        prog = words.find(|w| !w.starts_with(b"-"))?;
    }
    let base: &[u8] = {
        // python3.11 -> python, perl5.36 -> perl.
        let end = prog
            .iter()
            .position(|c| c.is_ascii_digit() || *c == b'.')
            .unwrap_or(prog.len());
        &prog[..end]
    };
    let (ty, mime, lens) = match base {
        b"sh" | b"bash" | b"dash" | b"zsh" | b"ksh" | b"mksh" | b"ash" | b"busybox" => {
            ("shell", "text/x-shellscript", Lens::Code)
        }
        b"python" | b"pypy" => ("python", "text/x-script.python", Lens::Code),
        b"perl" => ("perl", "text/x-perl", Lens::Code),
        b"ruby" => ("ruby", "text/x-ruby", Lens::Code),
        b"node" | b"nodejs" => ("javascript", "application/javascript", Lens::Code),
        b"awk" | b"nawk" | b"mawk" => ("awk", "text/x-awk", Lens::Code),
        b"gawk" => ("awk", "text/x-gawk", Lens::Code),
        b"php" => ("php", "text/x-php", Lens::Code),
        b"tclsh" | b"wish" | b"expect" => ("tcl", "text/x-tcl", Lens::Code),
        b"lua" => ("lua", "text/x-lua", Lens::Code),
        b"make" => ("makefile", "text/x-makefile", Lens::Code),
        // An interpreter libmagic has no name for: still a script, shown as code.
        _ => ("script", "text/plain", Lens::Code),
    };
    Some(Guess::own(ty, mime, lens, 0.9))
}

/// Formats announced by their first bytes.
fn leading_marker(t: &[u8]) -> Option<Guess> {
    const MARKERS: &[(&[u8], &str, &str, Lens)] = &[
        (b"<?php", "php", "text/x-php", Lens::Code),
        (
            b"-----BEGIN PGP PUBLIC KEY BLOCK",
            "pgp-keys",
            "application/pgp-keys",
            Lens::Text,
        ),
        (
            b"-----BEGIN PGP SIGNATURE",
            "pgp-signature",
            "application/pgp-signature",
            Lens::Text,
        ),
        (
            b"-----BEGIN PGP SIGNED MESSAGE",
            "pgp",
            "text/PGP",
            Lens::Text,
        ),
        (
            b"-----BEGIN PGP MESSAGE",
            "pgp",
            "application/pgp-encrypted",
            Lens::Text,
        ),
        (b"BEGIN:VCALENDAR", "icalendar", "text/calendar", Lens::Text),
        (b"BEGIN:VCARD", "vcard", "text/vcard", Lens::Text),
        (
            b"%!PS",
            "postscript",
            "application/postscript",
            Lens::Document,
        ),
        (b"%PDF-", "pdf", "application/pdf", Lens::Document),
        (b"{\\rtf", "rtf", "text/rtf", Lens::Document),
        (b"diff --git ", "diff", "text/x-diff", Lens::Code),
        (b"/* XPM */", "xpm", "image/x-xpixmap", Lens::Image),
        (b"\\documentclass", "tex", "text/x-tex", Lens::Document),
        (
            b"\\input texinfo",
            "texinfo",
            "text/x-texinfo",
            Lens::Document,
        ),
    ];
    for (m, ty, mime, lens) in MARKERS {
        if t.starts_with(m) {
            return Some(Guess::own(ty, mime, *lens, 0.95));
        }
    }
    // `%!` alone on the first line: a PostScript prologue (dvips's .pro
    // files), as libmagic reads it.
    if t.starts_with(b"%!\n") || t.starts_with(b"%!\r\n") {
        return Some(Guess::own(
            "postscript",
            "application/postscript",
            Lens::Document,
            0.8,
        ));
    }
    if let Some(g) = mail_or_news(t) {
        return Some(g);
    }
    if starts_with_ci(t, b"@echo off") || starts_with_ci(t, b"@rem") {
        return Some(Guess::own("batch", "text/x-msdos-batch", Lens::Code, 0.9));
    }
    // A unified diff, perhaps after a patch header: a `--- ` line then `+++ `.
    let mut prev: &[u8] = b"";
    for l in lines(t) {
        if prev.starts_with(b"--- ") && l.starts_with(b"+++ ") {
            return Some(Guess::own("diff", "text/x-diff", Lens::Code, 0.9));
        }
        prev = l;
    }
    // SubRip: "1", then "00:00:01,000 --> 00:00:04,000".
    let mut ls = lines(t);
    if let (Some(n), Some(ts)) = (ls.next(), ls.next()) {
        if !n.is_empty()
            && n.iter().all(u8::is_ascii_digit)
            && ts.len() >= 29
            && contains(ts, b" --> ")
        {
            return Some(Guess::own(
                "subrip",
                "application/x-subrip",
                Lens::Text,
                0.9,
            ));
        }
    }
    None
}

/// HTML and XML by their first tag (after comments and a doctype).
fn markup(t: &[u8]) -> Option<Guess> {
    if !t.starts_with(b"<") {
        return None;
    }
    if t.starts_with(b"<?xml") {
        let head = &t[..t.len().min(1024)];
        if contains(head, b"<svg") {
            return Some(Guess::own("svg", "image/svg+xml", Lens::Image, 0.95));
        }
        if contains(head, b"<!DOCTYPE html") || contains(head, b"<html") {
            return Some(Guess::own("xhtml", "text/html", Lens::Markup, 0.9));
        }
        return Some(Guess::own("xml", "text/xml", Lens::Markup, 0.95));
    }
    if t.starts_with(b"<svg") {
        return Some(Guess::own("svg", "image/svg+xml", Lens::Image, 0.9));
    }
    // Skip leading comments.
    let mut s = t;
    while s.starts_with(b"<!--") {
        let end = s.windows(3).position(|w| w == b"-->")?;
        s = skip_ws(&s[end + 3..]);
    }
    if HTML_TAGS.iter().any(|tag| starts_with_ci(s, tag)) {
        return Some(Guess::own("html", "text/html", Lens::Markup, 0.9));
    }
    if starts_with_ci(s, b"<!doctype") {
        return Some(Guess::own("xml", "text/xml", Lens::Markup, 0.7));
    }
    None
}

/// Tags that open an HTML document or fragment.
const HTML_TAGS: &[&[u8]] = &[
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<title",
    b"<script",
    b"<style",
    b"<table",
    b"<h1",
    b"<h2",
    b"<div",
    b"<p>",
    b"<meta",
    b"<link",
    b"<a ",
    b"<br",
    b"<ul",
    b"<pre",
    b"<center",
    b"<frameset",
    b"<iframe",
];

/// HTML templates (Jinja, Django, Liquid): a sample that opens with a template
/// tag, `{% ... %}`, `{# ... #}` or `{{ ... }}`, and holds HTML tags is HTML.
fn template(t: &[u8]) -> Option<Guess> {
    if !(t.starts_with(b"{%") || t.starts_with(b"{#") || t.starts_with(b"{{")) {
        return None;
    }
    let mut rest = t;
    while let Some(p) = rest.iter().position(|&c| c == b'<') {
        rest = &rest[p..];
        if HTML_TAGS.iter().any(|tag| starts_with_ci(rest, tag)) {
            return Some(Guess::own("html", "text/html", Lens::Markup, 0.6));
        }
        rest = &rest[1..];
    }
    None
}

/// Mail and news headers at the very start, as libmagic names them: a first
/// header libmagic keys on, followed by another `Name: value` header line.
fn mail_or_news(t: &[u8]) -> Option<Guess> {
    const FIRST: &[(&[u8], &str)] = &[
        (b"Path:", "message/news"),
        (b"Xref:", "message/news"),
        (b"Article ", "message/news"),
        (b"From:", "message/rfc822"),
        (b"Received:", "message/rfc822"),
        (b"Return-Path:", "message/rfc822"),
        (b"Delivered-To:", "message/rfc822"),
    ];
    let mime = FIRST
        .iter()
        .find(|(m, _)| starts_with_ci(t, m))
        .map(|&(_, mime)| mime)?;
    let second = lines(t).nth(1)?;
    let colon = second.iter().position(|&c| c == b':')?;
    let header = colon > 0
        && second[..colon]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && second.get(colon + 1) == Some(&b' ');
    header.then(|| {
        let ty = if mime == "message/news" {
            "news"
        } else {
            "mail"
        };
        Guess::own(ty, mime, Lens::Text, 0.85)
    })
}

fn is_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// `YYYY-MM-DD` then `T` or space then `hh:mm`.
fn iso_timestamp(l: &[u8]) -> bool {
    l.len() >= 16
        && is_digits(&l[0..4])
        && l[4] == b'-'
        && is_digits(&l[5..7])
        && l[7] == b'-'
        && is_digits(&l[8..10])
        && matches!(l[10], b'T' | b' ')
        && is_digits(&l[11..13])
        && l[13] == b':'
        && is_digits(&l[14..16])
}

/// `Mmm dd hh:mm:ss ` (BSD syslog).
fn syslog_timestamp(l: &[u8]) -> bool {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    l.len() >= 16
        && MONTHS.contains(&&l[0..3])
        && l[3] == b' '
        && (l[4] == b' ' || l[4].is_ascii_digit())
        && l[5].is_ascii_digit()
        && l[6] == b' '
        && l[9] == b':'
        && l[12] == b':'
        && is_digits(&l[7..9])
        && is_digits(&l[10..12])
        && is_digits(&l[13..15])
}

fn log_line(l: &[u8]) -> bool {
    let l = l.strip_prefix(b"[").unwrap_or(l);
    if iso_timestamp(l) || syslog_timestamp(l) {
        return true;
    }
    // RFC 5424: "<PRI>1 2026-...".
    if let Some(rest) = l.strip_prefix(b"<") {
        if let Some(gt) = rest.iter().take(4).position(|&c| c == b'>') {
            let after = &rest[gt + 1..];
            return is_digits(&rest[..gt])
                && after.len() > 2
                && after[0].is_ascii_digit()
                && after[1] == b' '
                && iso_timestamp(&after[2..]);
        }
    }
    // dmesg: "[    1.234567] ".
    if let Some(close) = l.iter().take(16).position(|&c| c == b']') {
        let num = l[..close].trim_ascii();
        if num.len() >= 3
            && num.iter().all(|c| c.is_ascii_digit() || *c == b'.')
            && num.contains(&b'.')
        {
            return true;
        }
    }
    false
}

/// Log files: most whole lines start with a timestamp; or journal export format.
fn log(t: &[u8]) -> Option<Guess> {
    if t.starts_with(b"__CURSOR=") || t.starts_with(b"__REALTIME_TIMESTAMP=") {
        return Some(Guess::own("journal-export", "text/plain", Lens::Log, 0.9));
    }
    let (mut n, mut hits) = (0u32, 0u32);
    for l in whole_lines(t).take(24) {
        n += 1;
        if log_line(l) {
            hits += 1;
        }
    }
    // Continuation lines (stack traces) are allowed; most must be stamped.
    if hits >= 2 && hits * 10 >= n * 6 {
        let c = if hits >= 5 { 0.85 } else { 0.7 };
        return Some(Guess::own("log", "text/plain", Lens::Log, c));
    }
    None
}

/// A YAML key line: `key:` or `key: value`, key without spaces.
fn yaml_key(l: &[u8]) -> bool {
    let Some(colon) = l.iter().position(|&c| c == b':') else {
        return false;
    };
    let key = &l[..colon];
    let key = key.strip_prefix(b"- ").unwrap_or(key);
    !key.is_empty()
        && key.iter().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'"' | b'\'' | b'/')
        })
        && (colon + 1 == l.len() || l[colon + 1] == b' ')
}

fn yaml(t: &[u8]) -> Option<Guess> {
    let explicit = t.starts_with(b"---\n") || t.starts_with(b"--- ") || t.starts_with(b"%YAML");
    let (mut n, mut good, mut keys, mut nested, mut items) = (0u32, 0u32, 0u32, false, false);
    for l in whole_lines(t) {
        let body = l.trim_ascii_start();
        if body.is_empty() || body.starts_with(b"#") || body == b"---" || body == b"..." {
            continue;
        }
        if l.starts_with(b"\t") {
            return None;
        }
        n += 1;
        let indented = body.len() < l.len();
        if yaml_key(body) {
            good += 1;
            keys += 1;
            nested |= indented;
        } else if body.starts_with(b"- ") || body == b"-" {
            good += 1;
            items = true;
        } else if indented {
            // A continuation of a block scalar: neutral.
            good += u32::from(n > 1);
        }
    }
    let share_ok = n >= 2 && good * 10 >= n * 9;
    if share_ok && keys >= 1 && (explicit || nested || items) {
        let c = if explicit || n >= 6 { 0.75 } else { 0.6 };
        return Some(Guess::own("yaml", "application/yaml", Lens::Code, c));
    }
    None
}

/// Source code and other text libmagic names by content: cheap line-start
/// patterns, scored, the best language wins.
/// TOML: `[table]` headers and `key = value` lines whose values are typed
/// (quoted strings, numbers, booleans, arrays, inline tables). INI shares the
/// shape but its values are bare words.
fn toml(t: &[u8]) -> Option<Guess> {
    let (mut headers, mut pairs, mut typed, mut strings) = (0u32, 0u32, 0u32, 0u32);
    for l in whole_lines(t).take(MAX_LINES) {
        let b = l.trim_ascii();
        if b.is_empty() || b.starts_with(b"#") {
            continue;
        }
        if b.starts_with(b"[") && b.ends_with(b"]") {
            headers += 1;
            continue;
        }
        let Some(eq) = b.iter().position(|&c| c == b'=') else {
            // A multi-line array or inline table goes on.
            if b.first().is_some_and(|c| b"\"']}0123456789".contains(c)) {
                continue;
            }
            return None;
        };
        let key = b[..eq].trim_ascii();
        let value = b[eq + 1..].trim_ascii();
        if key.is_empty()
            || !key
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"_-.\"' ".contains(c))
        {
            return None;
        }
        pairs += 1;
        let quoted = value.starts_with(b"\"") || value.starts_with(b"'");
        let structured = value.starts_with(b"[") || value.starts_with(b"{");
        if quoted
            || structured
            || value == b"true"
            || value == b"false"
            || value
                .first()
                .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')
                && value
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-+.:_".contains(c))
        {
            typed += 1;
        }
        strings += u32::from(quoted || structured);
    }
    (pairs >= 3 && typed * 10 >= pairs * 9 && strings >= 1 && (headers >= 1 || pairs >= 5))
        .then(|| Guess::own("toml", "application/toml", Lens::Code, 0.7))
}

/// Markdown: ATX or setext headings with the marks prose rarely has (links,
/// fenced code, emphasis, inline code, list items), or several headings set
/// apart by blank lines over paragraphs of prose.
fn markdown(t: &[u8]) -> Option<Guess> {
    let (mut headings, mut spaced, mut marks, mut lists) = (0u32, 0u32, 0u32, 0u32);
    let (mut prose, mut code_like) = (0u32, 0u32);
    let mut previous: &[u8] = b"";
    let mut after_heading = false;
    let mut in_fence = false;
    let end = t.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    for l in lines(&t[..end]).take(MAX_LINES * 2) {
        let hashes = l.iter().take_while(|&&c| c == b'#').count();
        if after_heading && l.trim_ascii().is_empty() {
            spaced += 1;
        }
        after_heading = false;
        if (1..=6).contains(&hashes) && l.get(hashes) == Some(&b' ') && l.len() > hashes + 1 {
            headings += 1;
            after_heading = true;
        } else if l.len() >= 3
            && (l.iter().all(|&c| c == b'=') || l.iter().all(|&c| c == b'-'))
            && !previous.trim_ascii().is_empty()
        {
            headings += 1;
        } else if l.first().is_some_and(u8::is_ascii_alphabetic)
            && l.iter().filter(|&&c| c == b' ').count() >= 3
        {
            prose += 1;
        }
        let b = l.trim_ascii_start();
        if l.starts_with(b"```") {
            in_fence = !in_fence;
        }
        // Code in fenced blocks is the document's; code outside them is not
        // Markdown's.
        if !in_fence
            && (l.ends_with(b";")
                || l.ends_with(b"{")
                || l.ends_with(b"}")
                || l.ends_with(b":")
                || contains(l, b"=")
                || b.starts_with(b"def ")
                || b.starts_with(b"import ")
                || b.starts_with(b"from ")
                || b.starts_with(b"class "))
        {
            code_like += 1;
        }
        if l.starts_with(b"```") {
            marks += 1;
        }
        if contains(l, b"](") || contains(l, b"**") {
            marks += 1;
        }
        if l.iter().filter(|&&c| c == b'`').count() >= 2 && !l.starts_with(b"```") {
            marks += 1;
        }
        if l.starts_with(b"- ") || l.starts_with(b"* ") || l.starts_with(b"1. ") {
            lists += 1;
        }
        previous = l;
    }
    let marked = headings >= 1 && (marks >= 2 || marks >= 1 && lists >= 1) && marks + lists >= 2;
    let set_apart = spaced >= 2 && prose >= 2;
    ((marked || set_apart) && 2 * code_like <= prose + lists + headings)
        .then(|| Guess::own("markdown", "text/markdown", Lens::Document, 0.6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(t: &[u8]) -> &'static str {
        ty_of(&detect(t))
    }

    fn ty_of(g: &Guess) -> &'static str {
        match g.name {
            super::super::Name::Own { ty, .. } => ty,
            _ => "format",
        }
    }

    #[test]
    fn shebangs() {
        assert_eq!(ty(b"#!/bin/sh\necho hi\n"), "shell");
        assert_eq!(ty(b"#!/usr/bin/env python3\nprint(1)\n"), "python");
        assert_eq!(ty(b"#!/usr/bin/env -S perl -w\n"), "perl");
        assert_eq!(ty(b"#!/usr/bin/python3.11"), "python");
        assert_eq!(ty(b"#! /bin/bash -e\n"), "shell");
        assert_eq!(ty(b"#!/opt/x/frobnicate\n"), "script");
        assert_eq!(
            detect(b"#!/usr/bin/gawk -f\n").mime_static(),
            Some("text/x-gawk")
        );
    }

    #[test]
    fn markup_kinds() {
        assert_eq!(ty(b"<?xml version=\"1.0\"?>\n<root/>"), "xml");
        assert_eq!(ty(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\">"), "svg");
        assert_eq!(ty(b"<!-- c -->\n<!DOCTYPE html>\n<html>"), "html");
        assert_eq!(ty(b"<HTML><HEAD>"), "html");
        // Cut inside the first comment: not claimed as markup.
        assert_eq!(ty(b"<!-- a comment that never ends"), "text");
    }

    #[test]
    fn json_and_ndjson() {
        assert_eq!(ty(b"{\"a\": [1, 2"), "json");
        assert_eq!(ty(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\""), "ndjson");
    }

    #[test]
    fn tables() {
        assert_eq!(ty(b"a,b,c\n1,2,3\n4,5,6\n7,8"), "csv");
        assert_eq!(ty(b"a\tb\n1\t2\n3\t4\n5\t"), "tsv");
        let g = detect(b"x;y\n1;2\n3;4\n");
        assert_eq!(g.table.map(|t| (t.delimiter, t.header)), Some((b';', true)));
    }

    #[test]
    fn logs() {
        assert_eq!(
            ty(b"Nov 26 10:00:01 web01 sshd[12]: accepted\nNov 26 10:00:02 web01 cron[3]: run\nNov 26 10:00:0"),
            "log"
        );
        assert_eq!(
            ty(b"2026-11-26T10:00:01Z INFO start\n2026-11-26 10:00:02,123 WARN x\n  at frame\n2026-11-26T10:00:03Z INFO y\n"),
            "log"
        );
        assert_eq!(
            ty(b"<34>1 2026-11-26T10:00:01Z h a 1 - - m\n<34>1 2026-11-26T10:00:02Z h a 1 - - m\n"),
            "log"
        );
        assert_eq!(
            ty(b"[    0.000000] Linux version\n[    0.000001] Command line\n"),
            "log"
        );
        assert_eq!(
            ty(b"__CURSOR=s=1;i=2\n__REALTIME_TIMESTAMP=1\n"),
            "journal-export"
        );
    }

    #[test]
    fn yaml_needs_structure() {
        assert_eq!(ty(b"---\nname: x\nitems:\n  - a\n  - b\n"), "yaml");
        assert_eq!(ty(b"server:\n  port: 80\n  host: x\nlog: debug\n"), "yaml");
        // deb822 / mail headers: flat keys only, not claimed.
        assert_eq!(ty(b"Package: x\nVersion: 1\nDescription: y\n"), "text");
        // Cut mid-line: the cut line is ignored.
        assert_eq!(ty(b"a:\n  b: 1\n  c: [1, 2"), "yaml");
    }

    #[test]
    fn languages_and_formats_added_against_two_references() {
        assert_eq!(
            ty(b"// Copyright\n\npackage types\n\nimport (\n\t\"fmt\"\n)\n\nfunc f() {\n}\n"),
            "go"
        );
        // Perl's packages end with `;`, Java's are dotted.
        assert_eq!(
            ty(b"package org.x.y;\n\nimport java.util.List;\n\npublic class A {\n    @Override\n"),
            "java"
        );
        assert_eq!(
            ty(b"% a comment\n\\def\\x{1}\n\\catcode`\\@=11\n\\input plain\n"),
            "tex"
        );
        // troff's font escapes open man page lines: not TeX.
        assert_eq!(
            ty(b".TH X 1\n.SH NAME\n\\fBx\\fR \\- y\n.SH SYNOPSIS\n"),
            "troff"
        );
        assert_eq!(
            ty(b"-- schema\nCREATE TABLE t (\n  id INTEGER PRIMARY KEY\n);\nINSERT INTO t (id) VALUES (1);\n"),
            "sql"
        );
        assert_eq!(
            ty(b"# build\nFROM debian:12\nRUN apt-get update\nCOPY . /src\nWORKDIR /src\nCMD [\"x\"]\n"),
            "dockerfile"
        );
        assert_eq!(
            ty(b"[package]\nname = \"x\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nserde = { version = \"1\" }\n"),
            "toml"
        );
        // INI has the shape, not the typed values.
        assert_ne!(
            ty(b"[main]\nname = Ana bravo\ncolor = blue green\nsize = big\n"),
            "toml"
        );
        assert_eq!(
            ty(b"# Title\n\nSome words of prose here, and more.\n\n## Part\n\nMore words of prose go here too.\n"),
            "markdown"
        );
        // A licence header of `#` comments over code is no Markdown.
        assert_ne!(
            ty(b"# Copyright 2022 X\n#\n# Licensed under a licence\n\nimport os\n\ndef f(x):\n    return x\n"),
            "markdown"
        );
        assert_eq!(
            ty(b"#include \"textflag.h\"\n\nTEXT \xc2\xb7f(SB),NOSPLIT,$0\n\tMOVQ $0, AX\n\tRET\n"),
            "asm"
        );
        // GNU ld scripts name sections with a colon: not assembly.
        assert_ne!(
            ty(b"SECTIONS\n{\n  .text :\n  {\n    *(.text)\n  }\n}\n"),
            "asm"
        );
        assert_eq!(ty(b"%!\nTeXDict begin/SDict 200 dict N\n"), "postscript");
        let mut min = b"var Gt=(n,t,e)=>{let s=n;".to_vec();
        min.resize(2000, b'x');
        min.push(b'\n');
        assert_eq!(ty(&min), "javascript");
        // Tcl's `namespace eval` is not C++.
        assert_ne!(
            ty(b"namespace eval ::tcl::clock {\n    ::msgcat::mcset en x y\n}\n"),
            "c++"
        );
    }

    #[test]
    fn code_by_content() {
        assert_eq!(
            ty(b"/* x */\n#include <stdio.h>\n#include <stdlib.h>\nint main(void)\n{\n"),
            "c"
        );
        assert_eq!(
            ty(b"import os\nimport sys\n\ndef main():\n    pass\n"),
            "python"
        );
        assert_eq!(ty(b"use std::io;\n\npub fn f() {}\nfn g() {}\n"), "rust");
        assert_eq!(ty(b".TH LS 1\n.SH NAME\nls\n"), "troff");
        assert_eq!(
            ty(b"# comment\n\nSHELL = /bin/sh\nCFLAGS = -O2\n"),
            "makefile"
        );
        assert_eq!(
            ty(b"body {\n  color: #000;\n  margin: 0;\n}\n.x {\n  padding: 1px;\n}\n"),
            "css"
        );
        assert_eq!(
            ty(b"Bug: 1\n\n--- a/x.sh\n+++ b/x.sh\n@@ -1 +1 @@\n"),
            "diff"
        );
        assert_eq!(ty(b"@REM hello\r\n@echo off\r\n"), "batch");
        assert_eq!(ty(b";;; x.el --- things\n(require 'y)\n"), "lisp");
        // Code in the fenced blocks of a Markdown document is not the document.
        assert_eq!(
            ty(b"# Errors\n\n```js\nconst x = require('x');\nmodule.exports = x;\n```\n"),
            "markdown"
        );
        assert_eq!(ty(b"Just some words.\nAnd more words here.\n"), "text");
        // Shell `elif` lines are not Python's; a recipe line needs a target.
        assert_eq!(
            ty(b"if [ -z x ]; then\n  a\nelif [ -n y ]; then\n  b\nfi\n"),
            "shell"
        );
        assert_eq!(ty(b"f()\n{\n\tx=$(ls)\n\ty=$(pwd)\n}\n"), "text");
        assert_eq!(ty(b"all: x\n\t$(CC) -o $@ x.c\n\t$(RM) y\n"), "makefile");
    }

    #[test]
    fn vim_script_is_plain_text_shown_as_code() {
        let g = detect(b"\" Vim syntax file\n\" Language: x\nif exists(\"b:current_syntax\")\n  finish\nendif\nlet s:cpo_save = &cpo\nsyn keyword xKeyword if\n");
        assert_eq!(
            (ty_of(&g), g.mime_static(), g.lens),
            ("vim", Some("text/plain"), Lens::Code)
        );
    }

    #[test]
    fn templates_mail_news_and_po() {
        assert_eq!(
            ty(b"{% extends \"base.html\" %}\n{% block body %}\n<div class=\"x\">{{ y }}</div>\n"),
            "html"
        );
        // A template tag without HTML is not HTML.
        assert_eq!(ty(b"{{ name }} says hello\n"), "text");
        assert_eq!(
            ty(b"From: a@example.org\nTo: b@example.org\nSubject: hi\n\nbody\n"),
            "mail"
        );
        assert_eq!(
            ty(b"Article 12 of alt.sources:\nPath: a!b\nFrom: x\n"),
            "news"
        );
        // "From:" then prose is not a mail header block.
        assert_eq!(
            ty(b"From: the start, it was clear\nthat this was prose.\n"),
            "text"
        );
        assert_eq!(
            ty(b"# comment\nmsgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain\\n\"\n"),
            "po"
        );
        assert_eq!(
            ty(b"; x.inf\n\n[Version]\nSignature=\"$Windows NT$\"\nClass=Ports\n"),
            "inf"
        );
        assert_eq!(ty(b"[Version]\nname=x\n"), "text");
    }
}
