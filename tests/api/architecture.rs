//! The module structure of `src/`, read from the source files (issue 11): no import cycle between
//! modules, and each layer refers only to the layers below it.
//!
//! Modules are files: `src/a.rs` or `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`; `lib.rs` and
//! `main.rs` are the root, which only declares modules, so its own edges are ignored. An edge is
//! every path a file writes that starts with `crate::`, `super::` or `self::` (in `use` trees,
//! grouped or spread over several lines, and inline in code), or with a name a `use` bound to one
//! of our modules; it points to the deepest file module the path names (`crate::db::DbConn` → `db`,
//! `crate::db::sessions::Refresh` → `db::sessions`). Comments, doc comments and literals are
//! dropped first. A module and its own ancestors or descendants may refer to each other
//! (`http` ↔ `http::auth`); edges between siblings or across the tree count.
//!
//! Std only: a small lexer, a `use`-tree parser and Tarjan's algorithm.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A file module, e.g. `"db::sessions"`; the crate root is `""`.
type Module = String;

/// Where a file refers to another module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Location {
    /// Relative to the crate, e.g. `src/http/auth.rs`.
    file: String,
    line: usize,
    /// The path as written, e.g. `super::openapi::ErrorResponse`.
    path: String,
}

/// `from → to → where`, only edges that count (see the module doc).
type Graph = BTreeMap<Module, BTreeMap<Module, Vec<Location>>>;

// ---------------------------------------------------------------------------------------------
// Lexer: identifiers, `::` and single punctuation; comments, strings, chars, numbers and lifetimes
// are dropped.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// From just after an opening `"` to just after the closing one.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// From just after the opening `"` of a raw string with `hashes` `#`s to just after its end.
fn skip_raw_string(chars: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if chars[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

/// From a `'` to just after the char literal or lifetime it starts.
fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        // '\n', '\'', '\u{1F600}'
        let mut j = i + 3;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if chars.get(i + 2) == Some(&'\'') {
        return i + 3; // 'x'
    }
    let mut j = i + 1; // 'a, 'static, 'outer:
    while j < chars.len() && is_ident_continue(chars[j]) {
        j += 1;
    }
    j
}

fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i + 1, &mut line),
            '\'' => i = skip_char_or_lifetime(&chars, i),
            ':' if next == Some(':') => {
                tokens.push(Token { tok: Tok::PathSep, line });
                i += 2;
            }
            '$' if is_ident_start(next) => {
                // `$crate` in a macro is this crate; any other `$name` is a metavariable.
                let start = i + 1;
                i = start;
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let tok = if word == "crate" { Tok::Ident(word) } else { Tok::Punct('$') };
                tokens.push(Token { tok, line });
            }
            c if is_ident_start(Some(c)) => {
                let start = i;
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
                match (word.as_str(), chars.get(i).copied()) {
                    ("b" | "c", Some('"')) => i = skip_string(&chars, i + 1, &mut line),
                    ("b", Some('\'')) => i = skip_char_or_lifetime(&chars, i),
                    ("r" | "br" | "cr", Some('"' | '#')) if chars.get(i + hashes) == Some(&'"') => {
                        i = skip_raw_string(&chars, i + hashes + 1, hashes, &mut line);
                    }
                    ("r", Some('#')) if is_ident_start(chars.get(i + 1).copied()) => {
                        // A raw identifier, `r#type`.
                        let start = i + 1;
                        i = start;
                        while i < chars.len() && is_ident_continue(chars[i]) {
                            i += 1;
                        }
                        tokens.push(Token { tok: Tok::Ident(chars[start..i].iter().collect()), line });
                    }
                    _ => tokens.push(Token { tok: Tok::Ident(word), line }),
                }
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
            }
            c => {
                tokens.push(Token { tok: Tok::Punct(c), line });
                i += 1;
            }
        }
    }
    tokens
}

// ---------------------------------------------------------------------------------------------
// Parser: every path of the form `a::b::…` a file writes, and every leaf of every `use` tree.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A leaf of a `use` tree; `binds` is the name it brings into scope (`None` for `*`, `as _`).
    Use { binds: Option<String> },
    /// A path in code, e.g. `crate::db::write_transaction(…)`.
    Inline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PathRef {
    /// The inline modules (`mod tests { … }`) around the path within its file.
    scope: Vec<String>,
    /// As written, a use leaf with its whole prefix: `["crate", "db", "sessions", "Refresh"]`.
    path: Vec<String>,
    line: usize,
    kind: Kind,
}

fn tok(tokens: &[Token], i: usize) -> Option<&Tok> {
    tokens.get(i).map(|t| &t.tok)
}

fn is_ident(tokens: &[Token], i: usize, word: &str) -> bool {
    matches!(tok(tokens, i), Some(Tok::Ident(w)) if w == word)
}

/// One use tree from `tokens[*i]`, its leaves appended to `out` as `(path, line, binds)`.
fn use_tree(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, usize, Option<String>)>) {
    let mut path = prefix.to_vec();
    loop {
        match tok(tokens, *i) {
            Some(Tok::PathSep) => *i += 1,
            Some(Tok::Ident(name)) => {
                let line = tokens[*i].line;
                path.push(name.clone());
                *i += 1;
                if tok(tokens, *i) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                // `{self, …}` names the prefix itself.
                if path.len() > 1 && path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                let mut binds = path.last().cloned();
                if is_ident(tokens, *i, "as") {
                    binds = match tok(tokens, *i + 1) {
                        Some(Tok::Ident(alias)) => Some(alias.clone()),
                        _ => None, // `as _`
                    };
                    *i += 2;
                }
                out.push((path, line, binds));
                return;
            }
            Some(Tok::Punct('*')) => {
                out.push((path, tokens[*i].line, None));
                *i += 1;
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match tok(tokens, *i) {
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        None => return,
                        Some(_) => {
                            let before = *i;
                            use_tree(tokens, i, &path, out);
                            if *i == before {
                                *i += 1; // not a use tree: step over it rather than loop
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

/// Every path written in `source`, comments and literals left out.
fn path_refs(source: &str) -> Vec<PathRef> {
    let tokens = lex(source);
    let mut refs = Vec::new();
    // Inline modules open at this point, with the brace depth inside each.
    let mut scope: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let names = || scope.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
        match &tokens[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scope.last().is_some_and(|&(_, d)| d == depth) {
                    scope.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(word) if word == "mod" => match (tok(&tokens, i + 1), tok(&tokens, i + 2)) {
                (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) => {
                    depth += 1;
                    scope.push((name.clone(), depth));
                    i += 3;
                }
                _ => i += 1,
            },
            Tok::Ident(word) if word == "use" => {
                i += 1;
                let mut leaves = Vec::new();
                use_tree(&tokens, &mut i, &[], &mut leaves);
                let scope = names();
                for (path, line, binds) in leaves {
                    refs.push(PathRef { scope: scope.clone(), path, line, kind: Kind::Use { binds } });
                }
            }
            Tok::Ident(head)
                if tok(&tokens, i + 1) == Some(&Tok::PathSep)
                    && (i == 0 || tok(&tokens, i - 1) != Some(&Tok::PathSep))
                    && !(i >= 3 && is_ident(&tokens, i - 1, "in") && is_ident(&tokens, i - 3, "pub")) =>
            {
                // (`pub(in crate::a)` is a visibility, not a reference.)
                let line = tokens[i].line;
                let mut path = vec![head.clone()];
                let mut j = i + 1;
                while tok(&tokens, j) == Some(&Tok::PathSep) {
                    match tok(&tokens, j + 1) {
                        Some(Tok::Ident(segment)) => {
                            path.push(segment.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                refs.push(PathRef { scope: names(), path, line, kind: Kind::Inline });
                i = j;
            }
            _ => i += 1,
        }
    }
    refs
}

// ---------------------------------------------------------------------------------------------
// Resolution: from a path to the file module it names.

fn split(module: &str) -> Vec<String> {
    if module.is_empty() { Vec::new() } else { module.split("::").map(String::from).collect() }
}

/// The absolute path `r` names, written in file module `module`: `None` for paths outside this
/// crate (std, dependencies, names we don't know) or that climb above the root.
fn absolute(module: &str, r: &PathRef, aliases: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut base: Vec<String> = split(module).into_iter().chain(r.scope.iter().cloned()).collect();
    let mut rest = r.path.iter().map(String::as_str).peekable();
    match *rest.peek()? {
        "crate" => {
            base.clear();
            rest.next();
        }
        "super" | "self" => {}
        name => {
            base = aliases.get(name)?.clone();
            rest.next();
        }
    }
    while let Some(&segment) = rest.peek() {
        match segment {
            "super" => {
                base.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest.next();
    }
    base.extend(rest.map(String::from));
    Some(base)
}

/// The deepest file module that is a prefix of `path` (at least the root, `""`).
fn deepest_module(modules: &BTreeSet<Module>, path: &[String]) -> Module {
    (0..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| modules.contains(m)).unwrap_or_default()
}

/// Whether `a` and `b` are the same module or one contains the other (the root contains all).
fn related(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a == b || b.starts_with(&format!("{a}::")) || a.starts_with(&format!("{b}::"))
}

/// The edges that count from file module `module` (source `source`, at `file`).
fn file_edges(modules: &BTreeSet<Module>, module: &str, file: &str, source: &str) -> Vec<(Module, Location)> {
    let refs = path_refs(source);
    // Names `use` bound to one of our modules: `use crate::db::{self, users}` binds `db`, `users`.
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &refs {
        if let Kind::Use { binds: Some(name) } = &r.kind
            && let Some(path) = absolute(module, r, &aliases)
            && !path.is_empty()
            && modules.contains(&path.join("::"))
            && !matches!(name.as_str(), "crate" | "super" | "self")
        {
            aliases.insert(name.clone(), path);
        }
    }
    let mut edges = Vec::new();
    for r in &refs {
        let Some(path) = absolute(module, r, &aliases) else { continue };
        let target = deepest_module(modules, &path);
        // Through an alias, a path in code adds something only when it goes deeper than the
        // alias (`db::sessions::x` after `use crate::db`): otherwise the `use` line is the edge.
        if r.kind == Kind::Inline
            && let Some(alias) = aliases.get(&r.path[0])
            && target == alias.join("::")
        {
            continue;
        }
        if !related(module, &target) {
            edges.push((target, Location { file: file.to_string(), line: r.line, path: r.path.join("::") }));
        }
    }
    edges
}

// ---------------------------------------------------------------------------------------------
// The crate's source.

struct Project {
    modules: BTreeSet<Module>,
    graph: Graph,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `a.rs`, `a/mod.rs` → `a`; `a/b.rs` → `a::b`; `lib.rs`, `main.rs` → the root.
fn module_name(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap_or_default();
    match file.as_str() {
        "mod.rs" => {}
        "lib.rs" | "main.rs" if parts.is_empty() => {}
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    parts.join("::")
}

fn load(root: &Path) -> Project {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let files: Vec<(Module, String, String)> = files
        .into_iter()
        // `src/bin/*.rs` are crates of their own.
        .filter(|path| !path.starts_with(src.join("bin")))
        .map(|path| {
            let module = module_name(path.strip_prefix(&src).expect("under src"));
            let shown = path.strip_prefix(root).expect("under the crate").to_string_lossy().replace('\\', "/");
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {shown}: {e}"));
            (module, shown, source)
        })
        .collect();
    let modules: BTreeSet<Module> = files.iter().map(|(module, _, _)| module.clone()).collect();
    let mut graph = Graph::new();
    for (module, file, source) in &files {
        graph.entry(module.clone()).or_default();
        for (target, location) in file_edges(&modules, module, file, source) {
            graph.entry(module.clone()).or_default().entry(target).or_default().push(location);
        }
    }
    for locations in graph.values_mut().flat_map(BTreeMap::values_mut) {
        locations.sort();
        locations.dedup();
    }
    Project { modules, graph }
}

fn project() -> &'static Project {
    static PROJECT: OnceLock<Project> = OnceLock::new();
    PROJECT.get_or_init(|| load(Path::new(env!("CARGO_MANIFEST_DIR"))))
}

// ---------------------------------------------------------------------------------------------
// Cycles.

/// Tarjan's strongly connected components with more than one module, each sorted.
fn cyclic_components(graph: &Graph) -> Vec<Vec<Module>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<Module>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(BTreeMap::keys) {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.components.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    let nodes: BTreeSet<&str> =
        graph.keys().map(String::as_str).chain(graph.values().flat_map(|e| e.keys().map(String::as_str))).collect();
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.components.sort();
    state.components
}

/// A shortest path `from → … → to` inside `members`.
fn shortest_path(graph: &Graph, members: &BTreeSet<&str>, from: &str, to: &str) -> Option<Vec<Module>> {
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while at != from {
                at = previous[at];
                path.push(at.to_string());
            }
            path.reverse();
            return Some(path);
        }
        for w in graph.get(v).into_iter().flat_map(BTreeMap::keys).map(String::as_str) {
            if members.contains(w) && seen.insert(w) {
                previous.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    None
}

/// For each component, concrete cycles (`a → b → a`) that together use every edge inside it,
/// each edge with the lines that make it. Empty when there is no cycle.
fn cycle_report(graph: &Graph) -> String {
    let components = cyclic_components(graph);
    let mut report = String::new();
    for (n, component) in components.iter().enumerate() {
        let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
        let _ = writeln!(report, "\ncycle group {}: {}", n + 1, component.join(", "));
        let mut covered: BTreeSet<(&str, &str)> = BTreeSet::new();
        let mut printed: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (from, edges) in graph.iter().filter(|(from, _)| members.contains(from.as_str())) {
            for to in edges.keys().filter(|to| members.contains(to.as_str())) {
                if covered.contains(&(from.as_str(), to.as_str())) {
                    continue;
                }
                let back = shortest_path(graph, &members, to, from).expect("a path back inside the component");
                let cycle: Vec<&str> = std::iter::once(from.as_str())
                    .chain(back.iter().map(|m| *members.get(m.as_str()).expect("inside")))
                    .collect();
                let _ = writeln!(report, "  cycle: {}", cycle.join(" → "));
                for pair in cycle.windows(2) {
                    let (a, b) = (pair[0], pair[1]);
                    covered.insert((a, b));
                    let _ = write!(report, "    {a} → {b}");
                    if !printed.insert((a, b)) {
                        let _ = writeln!(report, " (lines above)");
                        continue;
                    }
                    let _ = writeln!(report);
                    for l in &graph[a][b] {
                        let _ = writeln!(report, "      {}:{}  {}", l.file, l.line, l.path);
                    }
                }
            }
        }
    }
    if report.is_empty() {
        return report;
    }
    format!(
        "{} group(s) of modules of src/ refer to each other in a cycle. Break each cycle listed below: move the \
         shared item down into a module both can depend on, or pass it in from the caller.\n{report}",
        components.len()
    )
}

// ---------------------------------------------------------------------------------------------
// Layers.

fn within(module: &str, layer: &str) -> bool {
    module == layer || module.starts_with(&format!("{layer}::"))
}

/// Edges from `layer` (or its children) to a module for which `forbidden` holds, one per line.
fn layer_violations(graph: &Graph, layer: &str, forbidden: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for (from, edges) in graph.iter().filter(|(from, _)| within(from, layer)) {
        for (to, locations) in edges.iter().filter(|(to, _)| forbidden(to)) {
            for l in locations {
                let _ = writeln!(out, "  {from} → {to}: {}:{}  {}", l.file, l.line, l.path);
            }
        }
    }
    out
}

fn assert_layer(layer: &str, forbidden: &[&str]) {
    let violations = layer_violations(&project().graph, layer, |to| forbidden.iter().any(|f| within(to, f)));
    assert!(
        violations.is_empty(),
        "`{layer}` (and its children) must refer to nothing in {}, but:\n{violations}",
        forbidden.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
    );
}

// ---------------------------------------------------------------------------------------------
// The rules.

#[test]
fn no_import_cycle_between_modules() {
    let report = cycle_report(&project().graph);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn config_refers_to_no_module_of_ours() {
    let violations = layer_violations(&project().graph, "config", |to| !within(to, "config"));
    assert!(violations.is_empty(), "`config` must refer to no other module of this crate, but:\n{violations}");
}

#[test]
fn db_is_below_http_actors_service_config_startup_cli() {
    assert_layer("db", &["http", "actors", "service", "config", "startup", "cli"]);
}

#[test]
fn tokens_is_below_http_actors_service_db_startup_cli() {
    assert_layer("tokens", &["http", "actors", "service", "db", "startup", "cli"]);
}

#[test]
fn actors_is_below_http_service_startup_cli() {
    assert_layer("actors", &["http", "service", "startup", "cli"]);
}

#[test]
fn service_is_below_http_startup_cli() {
    assert_layer("service", &["http", "startup", "cli"]);
}

#[test]
fn http_reaches_actors_only_through_the_service_layer() {
    assert_layer("http", &["actors", "key_store", "startup", "cli"]);
}

#[test]
fn domain_values_depend_on_no_layer() {
    assert_layer("domain", &["http", "service", "actors", "db", "tokens", "key_store", "config", "startup", "cli"]);
}

#[test]
fn key_store_is_below_actors_and_service() {
    assert_layer("key_store", &["http", "service", "actors", "startup", "cli"]);
}

/// The rules above pass vacuously if the scan finds nothing: it must see the crate's modules and
/// the edges between them.
#[test]
fn the_scan_sees_the_source() {
    let project = project();
    for module in ["", "db", "http", "tokens"] {
        assert!(project.modules.contains(module), "module `{module}` not found in {:?}", project.modules);
    }
    let edges: usize = project.graph.values().map(BTreeMap::len).sum();
    assert!(edges >= 10, "only {edges} edges between {} modules: {:#?}", project.modules.len(), project.graph);
}

// ---------------------------------------------------------------------------------------------
// The scanner itself.

fn modules(names: &[&str]) -> BTreeSet<Module> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `"target line path"` for each edge from `module`.
fn edges_of(known: &[&str], module: &str, source: &str) -> Vec<String> {
    file_edges(&modules(known), module, "f.rs", source)
        .into_iter()
        .map(|(to, l)| format!("{to} {} {}", l.line, l.path))
        .collect()
}

/// `"path line"` for each path written in `source`.
fn paths(source: &str) -> Vec<String> {
    path_refs(source).into_iter().map(|r| format!("{} {}", r.path.join("::"), r.line)).collect()
}

#[test]
fn grouped_use_over_several_lines() {
    let source = "use crate::{\n    a::{b, c::D},\n    d as e,\n    f::{self, G},\n};\n";
    assert_eq!(paths(source), ["crate::a::b 2", "crate::a::c::D 2", "crate::d 3", "crate::f 4", "crate::f::G 4"]);
    let binds: Vec<_> = path_refs(source)
        .into_iter()
        .map(|r| match r.kind {
            Kind::Use { binds } => binds.unwrap_or_default(),
            Kind::Inline => panic!("inline"),
        })
        .collect();
    assert_eq!(binds, ["b", "D", "e", "f", "G"]);
}

#[test]
fn paths_resolve_to_the_deepest_file_module() {
    let known = ["", "a", "db", "db::sessions", "x"];
    let source = "use crate::db::sessions::Refresh;\nuse crate::db::DbConn;\nuse crate::{x, db::{sessions::{A, B}}};\n";
    assert_eq!(
        edges_of(&known, "a", source),
        [
            "db::sessions 1 crate::db::sessions::Refresh",
            "db 2 crate::db::DbConn",
            "x 3 crate::x",
            "db::sessions 3 crate::db::sessions::A",
            "db::sessions 3 crate::db::sessions::B",
        ]
    );
}

#[test]
fn super_super_and_self() {
    let known = ["", "a", "a::b", "a::b::c", "a::x", "a::b::y"];
    let source = "use super::super::x::Y;\nuse super::y;\nuse self::inner::Z;\nfn f() { super::super::x::g() }\n";
    assert_eq!(
        edges_of(&known, "a::b::c", source),
        ["a::x 1 super::super::x::Y", "a::b::y 2 super::y", "a::x 4 super::super::x::g"]
    );
    // Climbing above the root names nothing of ours.
    assert_eq!(edges_of(&known, "a", "use super::super::x;"), Vec::<String>::new());
}

#[test]
fn inline_paths_in_code() {
    let known = ["", "db", "throttle", "http", "http::errors", "http::auth"];
    let source = "fn f(c: &mut Conn) {\n    crate::db::write_transaction(c, |c| Ok(()))?;\n    \
                  let e: super::errors::AppError = make();\n    let _ = <T as crate::throttle::Rule>::new();\n}\n";
    assert_eq!(
        edges_of(&known, "http::auth", source),
        [
            "db 2 crate::db::write_transaction",
            "http::errors 3 super::errors::AppError",
            "throttle 4 crate::throttle::Rule"
        ]
    );
    // `super::errors` is a sibling of `http::auth`, so it counts; from `http` itself `errors` is a
    // child and does not.
    assert_eq!(
        edges_of(&known, "http::users", "fn f() -> super::errors::AppError {}"),
        ["http::errors 1 super::errors::AppError"]
    );
    assert_eq!(edges_of(&known, "http", "use errors::AppError; fn f() -> self::errors::E {}"), Vec::<String>::new());
}

#[test]
fn comments_and_literals_are_not_references() {
    let source = "// use crate::a;\n/// See [`crate::b::B`].\n//! crate::c\n/* crate::d /* nested crate::e */ crate::f */\n\
                  const S: &str = \"crate::g\";\nconst R: &str = r#\"crate::h \"quoted\"\"#;\nconst C: char = '\"';\n\
                  fn f<'a>(x: &'a str) -> crate::i::I { crate::j::J }\n";
    assert_eq!(paths(source), ["crate::i::I 8", "crate::j::J 8"]);
}

#[test]
fn inline_test_modules_resolve_super_to_their_file() {
    let known = ["", "a", "b"];
    let source =
        "fn x() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::b::B;\n}\nuse super::b::C;\n";
    // In `mod tests`, `super` is `a` itself, `super::super` the root; after it closes, `super` is the root.
    assert_eq!(edges_of(&known, "a", source), ["b 5 super::super::b::B", "b 7 super::b::C"]);
}

#[test]
fn names_bound_by_use_lead_further() {
    let known = ["", "cli", "db", "db::users", "db::sessions"];
    let source = "use crate::db::{self, users};\nfn f() {\n    db::sessions::revoke();\n    users::find();\n    \
                  db::connect();\n}\n";
    assert_eq!(
        edges_of(&known, "cli", source),
        ["db 1 crate::db", "db::users 1 crate::db::users", "db::sessions 3 db::sessions::revoke",]
    );
}

#[test]
fn macro_crate_and_visibility() {
    let known = ["", "a", "b", "c"];
    let source = "macro_rules! m { ($x:ident) => { $crate::b::B::$x } }\npub(in crate::c) fn f() {}\n";
    assert_eq!(edges_of(&known, "a", source), ["b 1 crate::b::B"]);
}

#[test]
fn module_names_follow_files() {
    assert_eq!(module_name(Path::new("lib.rs")), "");
    assert_eq!(module_name(Path::new("main.rs")), "");
    assert_eq!(module_name(Path::new("config.rs")), "config");
    assert_eq!(module_name(Path::new("db/mod.rs")), "db");
    assert_eq!(module_name(Path::new("db/sessions.rs")), "db::sessions");
    assert_eq!(module_name(Path::new("a/b/mod.rs")), "a::b");
}

#[test]
fn cycles_are_reported_with_their_edges() {
    let edge = |from: &str, to: &str, line| {
        (
            from.to_string(),
            to.to_string(),
            Location { file: format!("src/{from}.rs"), line, path: format!("crate::{to}") },
        )
    };
    let mut graph = Graph::new();
    for (from, to, l) in [
        edge("config", "throttle", 1),
        edge("throttle", "db", 2),
        edge("db", "config", 3),
        edge("http", "db", 4),
        edge("x", "y", 5),
        edge("y", "x", 6),
    ] {
        graph.entry(from).or_default().entry(to).or_default().push(l);
    }
    assert_eq!(cyclic_components(&graph), [vec!["config", "db", "throttle"], vec!["x", "y"]]);
    let report = cycle_report(&graph);
    assert!(report.contains("cycle: config → throttle → db → config"), "{report}");
    assert!(report.contains("db → config\n      src/db.rs:3  crate::config"), "{report}");
    assert!(report.contains("cycle: x → y → x"), "{report}");
    assert!(!report.contains("http"), "{report}");
    graph.get_mut("db").unwrap().remove("config");
    graph.get_mut("y").unwrap().remove("x");
    assert_eq!(cycle_report(&graph), "");
}

#[test]
fn layer_rules_see_children() {
    let mut graph = Graph::new();
    let l = Location { file: "src/db/users.rs".into(), line: 7, path: "crate::http::X".into() };
    graph.entry("db::users".into()).or_default().insert("http::errors".into(), vec![l]);
    assert_eq!(
        layer_violations(&graph, "db", |to| within(to, "http")),
        "  db::users → http::errors: src/db/users.rs:7  crate::http::X\n"
    );
    assert_eq!(layer_violations(&graph, "dbx", |_| true), "");
}
