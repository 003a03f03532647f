//! The source-code detector: one pass over a sample's first lines, each line
//! scored for the languages whose marks it carries (C and C++, Python, Perl,
//! JavaScript, Rust, Go, Java, TeX, SQL, Dockerfile, assembly, troff, make,
//! m4, Lisp, shell, CSS, Vim script), the best score winning. Formats
//! announced by a pair of lines (gettext catalogues, Windows INF) are caught
//! in the same pass. Called by `text::detect` after the stronger evidence
//! (shebangs, markers, markup, JSON, logs) found nothing; never allocates.

use super::text::{contains, starts_with_ci};
use super::{Guess, Lens};

/// Lines the source-code detector looks at.
const CODE_LINES: usize = 120;
/// Longer lines are skipped by the source-code detector.
const MAX_CODE_LINE: usize = 1024;

/// Formats announced by a pair of lines, recognised line by line inside the code
/// detector's loop so a sample is split into lines once:
/// - GNU gettext catalogues: a `msgid "..."` line (perhaps continued by string
///   lines), then `msgstr` or `msgid_plural`;
/// - Windows setup information (`.inf`): a `[Version]` section whose first entry
///   is the `Signature="$...$"` line every INF file carries.
#[derive(Default)]
struct LinePairs {
    msgid: bool,
    version: bool,
}

impl LinePairs {
    fn line(&mut self, l: &[u8]) -> Option<Guess> {
        if self.msgid && (l.starts_with(b"msgstr") || l.starts_with(b"msgid_plural ")) {
            return Some(Guess::own("po", "text/x-po", Lens::Code, 0.85));
        }
        self.msgid = l.starts_with(b"msgid \"") || self.msgid && l.starts_with(b"\"");
        let t = l.trim_ascii();
        if self.version && !t.is_empty() && !t.starts_with(b";") {
            self.version = false;
            if starts_with_ci(t, b"signature") && contains(t, b"$") {
                return Some(Guess::own(
                    "inf",
                    "application/x-setupscript",
                    Lens::Code,
                    0.85,
                ));
            }
        }
        self.version |= t.eq_ignore_ascii_case(b"[version]");
        None
    }
}

/// Source code (and troff, make, m4, CSS, ... by the same line rules): the
/// language whose lines score most, when any scores at least 2.
pub(super) fn detect(t: &[u8]) -> Option<Guess> {
    #[derive(Default)]
    struct Score {
        c: u32,
        cpp: u32,
        python: u32,
        perl: u32,
        js: u32,
        rust: u32,
        troff: u32,
        make: u32,
        m4: u32,
        lisp: u32,
        shell: u32,
        css: u32,
        vim: u32,
        go: u32,
        java: u32,
        tex: u32,
        sql: u32,
        docker: u32,
        asm: u32,
    }
    let mut s = Score::default();
    // An Emacs mode line on the first line names the language outright.
    let first = t.split(|&c| c == b'\n').next().unwrap_or(t);
    if contains(first, b"-*- C++ -*-") || contains(first, b"-*- c++ -*-") {
        s.cpp += 4;
    } else if contains(first, b"-*- Autoconf -*-") {
        s.m4 += 4;
    } else if first.starts_with(b"\" Vim ") {
        // Vim runtime files open with `" Vim syntax file` and the like.
        s.vim += 4;
    } else if first.starts_with(b";;") {
        // Lisp comments (Emacs Lisp files open with `;;; name.el --- ...`).
        s.lisp += 4;
    }
    let mut css_properties = 0u32;
    // A make recipe line (tab, then `$(...)`) counts only after a target line.
    let mut make_target = false;
    let mut fenced = false;
    let mut pairs = LinePairs::default();
    // Source files often open with a long licence comment: look further than the
    // other line detectors, still bounded.
    for l in t
        .split(|&c| c == b'\n')
        .take(CODE_LINES)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
    {
        if l.len() > MAX_CODE_LINE {
            // Minified code, data or prose paragraphs: the line-start rules say
            // nothing reliable about them, and each rule would scan all of it.
            // Minified JavaScript opens the way bundlers write it.
            const MINIFIED: &[&[u8]] = &[b"!function(", b"(function(", b"/*! ", b"\"use strict\";"];
            let head = &l[..200];
            if MINIFIED.iter().any(|p| l.starts_with(p))
                || (l.starts_with(b"var ") || l.starts_with(b"let ") || l.starts_with(b"const "))
                    && (contains(head, b"=>") || contains(head, b"function("))
            {
                s.js += 2;
            }
            continue;
        }
        if let Some(g) = pairs.line(l) {
            return Some(g);
        }
        let b = l.trim_ascii_start();
        fenced |= l.starts_with(b"```");
        let starts = |p: &[u8]| b.starts_with(p);
        if starts(b"#include ")
            || starts(b"#include<")
            || starts(b"#ifndef ")
            || starts(b"#define ")
            || starts(b"#ifdef ")
            || starts(b"#endif")
            || starts(b"#pragma ")
        {
            s.c += 2;
        }
        if starts(b"typedef ")
            || starts(b"struct ")
            || starts(b"static ")
            || starts(b"extern ")
            || starts(b"int main")
        {
            s.c += 1;
        }
        // (Tcl opens blocks with `namespace eval`.)
        if starts(b"namespace ") && !starts(b"namespace eval ")
            || starts(b"template <")
            || starts(b"template<")
            || starts(b"public:")
            || starts(b"private:")
            || contains(b, b"std::")
        {
            s.cpp += 2;
        }
        // `import "fmt"` and `import (` are Go's; `import a.b.C;` Java's.
        if (starts(b"import ")
            && !b.ends_with(b";")
            && b.get(7)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_'))
            || (starts(b"from ") && contains(b, b" import "))
        {
            s.python += 2;
        }
        // Go: `package name` without a semicolon, its imports and declarations.
        if starts(b"package ")
            && !b.ends_with(b";")
            && b[8..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            s.go += 3;
        }
        if starts(b"import (")
            || starts(b"import \"")
            || starts(b"func ") && b.ends_with(b"{")
            || starts(b"type ") && (b.ends_with(b"struct {") || b.ends_with(b"interface {"))
        {
            s.go += 2;
        }
        // Java: dotted packages and imports, class declarations, annotations.
        if (starts(b"package ") || starts(b"import "))
            && b.ends_with(b";")
            && contains(b, b".")
            && !contains(b, b"::")
        {
            s.java += 2;
        }
        if starts(b"public class ")
            || starts(b"public final class ")
            || starts(b"public abstract class ")
            || starts(b"public interface ")
            || starts(b"@Override")
            || starts(b"private static final ")
            || starts(b"public static void main(")
        {
            s.java += 2;
        }
        // TeX: control sequences opening lines, the common ones counting more.
        if l.first() == Some(&b'\\') && l.get(1).is_some_and(u8::is_ascii_alphabetic) {
            const TEX: &[&[u8]] = &[
                b"\\documentclass",
                b"\\usepackage",
                b"\\begin{",
                b"\\end{",
                b"\\section",
                b"\\chapter",
                b"\\def\\",
                b"\\edef\\",
                b"\\gdef\\",
                b"\\newcommand",
                b"\\renewcommand",
                b"\\input ",
                b"\\catcode",
                b"\\let\\",
                b"\\expandafter",
                b"\\ProvidesPackage",
                b"\\ProvidesFile",
                b"\\NeedsTeXFormat",
                b"\\endinput",
                b"\\relax",
                b"\\global",
                b"\\ifx",
                b"\\csname",
                b"\\makeatletter",
            ];
            // troff's font escapes (`\fB`, `\fI`) open lines of man pages too.
            if TEX.iter().any(|p| l.starts_with(p)) {
                s.tex += 2;
            } else if !l.starts_with(b"\\f") {
                s.tex += 1;
            }
        }
        // Assembly: Go's (TEXT ·f(SB)) and GNU as directives.
        if (starts(b"TEXT ") || starts(b"GLOBL ") || starts(b"DATA ")) && contains(b, b"(SB)") {
            s.asm += 3;
        }
        const AS: &[&[u8]] = &[
            b".globl ",
            b".global ",
            b".section ",
            b".text",
            b".type ",
            b".size ",
            b".p2align ",
            b".cfi_",
            b".file ",
            b".ident ",
        ];
        // (GNU ld scripts name sections too, as `.text : { ... }`.)
        if AS.iter().any(|p| starts(p)) && !contains(b, b":") {
            s.asm += 2;
        }
        // SQL statements, in either case.
        const SQL: &[&[u8]] = &[
            b"create table ",
            b"create index ",
            b"create unique index ",
            b"create view ",
            b"insert into ",
            b"select ",
            b"delete from ",
            b"drop table ",
            b"alter table ",
            b"update ",
            b"begin transaction",
            b"commit;",
        ];
        if SQL.iter().any(|p| starts_with_ci(b, p))
            && (b.ends_with(b";")
                || b.ends_with(b"(")
                || contains(b, b" from ")
                || starts_with_ci(b, b"create"))
        {
            s.sql += 2;
        }
        // Dockerfile instructions, upper case; they count once a FROM is seen.
        if l.starts_with(b"FROM ") && l.len() > 5 && !contains(l, b"=") {
            s.docker += 3;
        } else if s.docker > 0 {
            const DOCKER: &[&[u8]] = &[
                b"RUN ",
                b"COPY ",
                b"ADD ",
                b"ENV ",
                b"WORKDIR ",
                b"EXPOSE ",
                b"CMD ",
                b"ENTRYPOINT ",
                b"ARG ",
                b"LABEL ",
                b"USER ",
                b"VOLUME ",
            ];
            if DOCKER.iter().any(|p| l.starts_with(p)) {
                s.docker += 1;
            }
        }
        if (starts(b"def ") || starts(b"class ") || starts(b"elif ")) && b.ends_with(b":")
            || starts(b"if __name__ ==")
        {
            s.python += 2;
        }
        if starts(b"use strict;")
            || starts(b"use warnings;")
            || starts(b"my $")
            || starts(b"package ") && b.ends_with(b";") && !contains(b, b".")
            || starts(b"sub ") && b.ends_with(b"{")
            || b == b"1;"
            || starts(b"require '")
        {
            s.perl += 2;
        }
        if starts(b"'use strict'")
            || starts(b"\"use strict\"")
            || starts(b"module.exports")
            || starts(b"const ") && contains(b, b"require(")
            || starts(b"function ") && b.ends_with(b"{")
            || starts(b"export ")
            || starts(b"var ") && b.ends_with(b";")
        {
            s.js += 2;
        }
        if starts(b"fn ")
            || starts(b"pub fn ")
            || starts(b"pub(crate) ")
            || starts(b"use std::")
            || starts(b"impl ")
            || starts(b"let mut ")
            || starts(b"//!")
            || starts(b"#[derive(")
            || starts(b"mod ") && b.ends_with(b";")
        {
            s.rust += 2;
        }
        if l.starts_with(b".\\\"")
            || l.starts_with(b".TH ")
            || l == b".ig"
            || l.starts_with(b".de ")
            || l.starts_with(b".Dd ")
            || l.starts_with(b".Dt ")
            || l.starts_with(b".Sh ")
            || l.starts_with(b".SH ")
            || l.starts_with(b"'\\\"")
            || l.starts_with(b".PP")
            || l.starts_with(b".TP")
        {
            s.troff += 2;
        }
        if l.starts_with(b"dnl ")
            || l.starts_with(b"AC_")
            || l.starts_with(b"m4_")
            || l.starts_with(b"AU_DEFUN")
        {
            s.m4 += 2;
        } else if starts(b"AC_") || starts(b"AM_") || starts(b"m4_") {
            // Autoconf macros called inside a macro body.
            s.m4 += 1;
        }
        // Make variables and special targets libmagic also keys on.
        const MAKE_STARTS: &[&[u8]] = &[
            b".PHONY",
            b".PRECIOUS",
            b".SUFFIXES",
            b"all:",
            b"SHELL =",
            b"SHELL=",
            b"VPATH",
            b"CFLAGS",
            b"LDFLAGS",
            b"SUBDIRS",
            b"prefix=",
            b"prefix =",
            b"@SET_MAKE@",
        ];
        if MAKE_STARTS.iter().any(|m| l.starts_with(m))
            || l.starts_with(b"include ") && !contains(l, b"\"")
            || (l.starts_with(b"\t") && make_target && (contains(l, b"$(") || contains(l, b"$@")))
        {
            s.make += 2;
        }
        // `$$` is make's escaped dollar (automake output is full of it); asked
        // only once the sample already looks like a makefile.
        if s.make > 0 && contains(l, b"$$") {
            s.make += 1;
        }
        make_target |= l
            .first()
            .is_some_and(|c| !c.is_ascii_whitespace() && *c != b'#')
            && l.iter().position(|&c| c == b':').is_some_and(|colon| {
                !contains(&l[..colon], b"=")
                    && !contains(&l[..colon], b"(")
                    && l.get(colon + 1) != Some(&b'=')
            });
        if l.starts_with(b";;; ")
            || l.starts_with(b"(defun ")
            || l.starts_with(b"(require '")
            || l.starts_with(b"(setq ")
        {
            s.lisp += 2;
        }
        if starts(b"if [ ")
            || starts(b"fi") && b.len() == 2
            || starts(b"esac")
            || starts(b"export ") && contains(b, b"=")
            || starts(b"then") && b.len() == 4
        {
            s.shell += 1;
        }
        // CSS: `selector {` lines and indented `property: value;` lines.
        if l.first().is_some_and(|c| c.is_ascii_whitespace())
            && b.first()
                .is_some_and(|c| c.is_ascii_lowercase() || *c == b'-')
            && b.ends_with(b";")
            && b.iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
                .count()
                + 1
                == b.iter().position(|&c| c == b':').unwrap_or(0) + 1
            && !contains(b, b"(")
        {
            s.css += 1;
            css_properties += 1;
        }
        if b.ends_with(b"{")
            && b.first()
                .is_some_and(|c| matches!(c, b'.' | b'#' | b'@' | b'a'..=b'z' | b'*'))
            && !contains(b, b"(")
            && !contains(b, b"=")
        {
            s.css += 1;
        }
        // Vim script: scoped variables, syntax and highlight commands, functions.
        const VIM_STARTS: &[&[u8]] = &[
            b"let g:",
            b"let s:",
            b"let b:",
            b"let l:",
            b"let &cpo",
            b"set cpo",
            b"setlocal ",
            b"syn ",
            b"syntax ",
            b"hi def ",
            b"hi link ",
            b"highlight ",
            b"function!",
            b"func!",
            b"endfunction",
            b"endfunc",
            b"augroup ",
            b"autocmd ",
            b"if exists(",
            b"command!",
            b"nnoremap ",
            b"\" Language:",
            b"\" Maintainer:",
        ];
        let vim_line = VIM_STARTS.iter().any(|p| starts(p));
        if vim_line {
            s.vim += 2;
        }
        if !vim_line
            && ((starts(b"const ") || starts(b"let ")) && contains(b, b" = ")
                || contains(b, b") => "))
        {
            s.js += 1;
        }
    }
    if fenced {
        // Code inside fenced blocks of a Markdown document: prose, not code.
        return None;
    }
    if css_properties < 2 {
        // `else {` lines alone make no style sheet.
        s.css = 0;
    }
    if s.docker < 5 {
        // A FROM line alone (prose, SQL) is no Dockerfile.
        s.docker = 0;
    }
    let candidates: [(u32, &str, &str); 19] = [
        (s.css, "css", "text/css"),
        (s.troff * 2, "troff", "text/troff"),
        (s.cpp + if s.cpp > 0 { s.c } else { 0 }, "c++", "text/x-c++"),
        (s.c, "c", "text/x-c"),
        (s.python, "python", "text/x-script.python"),
        (s.perl, "perl", "text/x-perl"),
        (s.js, "javascript", "application/javascript"),
        (s.rust, "rust", "text/rust"),
        (s.m4, "m4", "text/x-m4"),
        (s.make, "makefile", "text/x-makefile"),
        (s.lisp, "lisp", "text/x-lisp"),
        (s.shell, "shell", "text/x-shellscript"),
        // libmagic has no name for Vim script: plain text, shown as code.
        (s.vim, "vim", "text/plain"),
        (s.go, "go", "text/x-go"),
        (s.java, "java", "text/x-java"),
        (s.tex, "tex", "text/x-tex"),
        (s.sql, "sql", "application/x-sql"),
        (s.docker, "dockerfile", "text/x-dockerfile"),
        (s.asm, "asm", "text/x-asm"),
    ];
    let (best, ty, mime) =
        candidates
            .iter()
            .copied()
            .fold((0, "", ""), |a, b| if b.0 > a.0 { b } else { a });
    if best < 2 {
        return None;
    }
    let lens = if ty == "troff" {
        Lens::Document
    } else {
        Lens::Code
    };
    let c = if best >= 6 { 0.7 } else { 0.55 };
    Some(Guess::own(ty, mime, lens, c))
}
