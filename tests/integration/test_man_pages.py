"""The man pages document every option and every configuration key.

flowfold(8) and flowfold.yaml(5) are what an administrator reads, and they
fell behind the program: --mysql, --workers, --ipfix-encoder, --check-config
FILE, `type: mysql` and `cache.workers` were missing, and FILES named the
wrong spool directory. This test compares the pages with what the program
really accepts, so the next option or key cannot be forgotten:

* every option `flowfold --help` lists is a documented term in OPTIONS of
  flowfold(8), with its value when --help shows one; every option OPTIONS
  documents is one the binary accepts; --help lists every option the
  command-line parser (probe/src/cli.cc) knows;
* every key of the example configurations (examples/*.yaml,
  packaging/flowfold.yaml), commented-out examples included, every exporter
  `type:` they name, and every key the parsers accept (probe/config/src/
  config.cc and its settings table settings.cc, each exporter's settings
  table exporters/*/src/*_settings.cc, the MySQL sink's option table) is a
  documented term (bold) in
  flowfold.yaml(5);
* FILES in flowfold(8) names the MySQL sink's real default spool directory,
  read from exporters/mysql/src/mysql_options.cc.

Standard library only: the man pages are read as troff source.
"""

import glob
import os
import re
import subprocess
import unittest

from harness import FLOWFOLD, REPO

MAN8 = os.path.join(REPO, "packaging", "man", "flowfold.8")
MAN5 = os.path.join(REPO, "packaging", "man", "flowfold.yaml.5")
CLI_SOURCE = os.path.join(REPO, "probe", "src", "cli.cc")
CONFIG_SOURCE = os.path.join(REPO, "probe", "config", "src", "config.cc")
SETTINGS_SOURCE = os.path.join(REPO, "probe", "config", "src", "settings.cc")
# Each exporter's own settings table (setting.h).
EXPORTER_SETTINGS_SOURCES = [os.path.join(REPO, "exporters", kind, "src", kind + "_settings.cc")
                             for kind in ("ipfix", "netflow9", "text")]
MYSQL_OPTIONS_SOURCE = os.path.join(REPO, "exporters", "mysql", "src", "mysql_options.cc")


def example_configurations():
    """The YAML files shipped as examples, each once."""
    paths = sorted(glob.glob(os.path.join(REPO, "examples", "*.yaml")))
    paths.append(os.path.join(REPO, "packaging", "flowfold.yaml"))
    return paths


def relative(path):
    return os.path.relpath(path, REPO)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------------ options

LONG_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
SHORT_OPTION = re.compile(r"(?<![\w-])-([A-Za-z])(?![\w-])")


def options_in(text):
    """The options named in `text`: '--name' and '-x'."""
    return {"--" + m for m in LONG_OPTION.findall(text)} | {"-" + m for m in SHORT_OPTION.findall(text)}


def help_text():
    out = subprocess.run([FLOWFOLD, "--help"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"{FLOWFOLD} --help exited {out.returncode}: {out.stderr}")
    return out.stdout + out.stderr


def help_synopses(text):
    """Option synopses of --help: {'--mtu': 'N', '--text': '[=FILE]', '-h': ''}.

    An option line starts with two spaces and a dash; its synopsis column ends
    at the first run of two spaces."""
    synopses = {}
    for line in text.splitlines():
        if not re.match(r"^ {2}-", line):
            continue
        synopsis = re.split(r" {2,}", line.strip(), maxsplit=1)[0]
        for part in synopsis.split(", "):
            name, _, value = part.partition(" ")
            bracket = name.find("[")  # --text[=FILE]
            if bracket > 0:
                name, value = name[:bracket], name[bracket:]
            synopses[name] = value.strip()
    return synopses


def parser_options():
    """Options getopt_long accepts: cli.cc's option table and its short-option string."""
    source = read(CLI_SOURCE)
    longs = re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', source)
    shorts = re.search(r'getopt_long\(argc, argv, "([^"]*)"', source)
    if not longs or not shorts:
        raise AssertionError(f"the option table or getopt_long call of {relative(CLI_SOURCE)} was not found: "
                             "update this test")
    return {"--" + name for name in longs} | {"-" + c for c in shorts.group(1) if c.isalpha()}


# ---------------------------------------------------------------- troff

def plain_troff(text):
    """Troff source with dashes as typed and font escapes gone."""
    text = text.replace("\\-", "-").replace("\\(em", "-").replace("\\&", "")
    return re.sub(r"\\f(\(..|\[[^]]*\]|.)", "", text)


def troff_arguments(line):
    """Arguments of a macro line, troff quoting ("" inside quotes is a quote)."""
    return [quoted.replace('""', '"') if quoted is not None and bare == "" else bare
            for quoted, bare in re.findall(r'"((?:[^"]|"")*)"|(\S+)', line)]


def sections(source):
    """{'OPTIONS': [lines], ...}: the lines under each .SH heading."""
    result, current = {}, None
    for line in source.splitlines():
        if line.startswith(".SH "):
            current = " ".join(troff_arguments(line[4:]))
            result[current] = []
        elif current is not None:
            result[current].append(line)
    return result


def tag_lines(lines):
    """Lines that are the tag of a .TP paragraph (the term it documents)."""
    return [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.strip() == ".TP"]


# Which arguments a font-alternating macro sets in bold: even ones for
# .BR/.BI, odd ones for .RB/.IB, all for .B.
BOLD_POSITIONS = {".B": None, ".BR": 0, ".BI": 0, ".RB": 1, ".IB": 1}


def bold_spans(source):
    """Every piece of text set in bold: .B/.BR-style arguments, \\fB...\\f? runs, .SS headings."""
    spans = re.findall(r"\\fB(.*?)(?=\\f|$)", source, flags=re.M)
    for line in source.splitlines():
        macro, _, rest = line.partition(" ")
        if macro == ".SS":
            spans.append(rest)
        if macro in BOLD_POSITIONS:
            arguments = troff_arguments(rest)
            first = BOLD_POSITIONS[macro]
            spans.extend(arguments if first is None else arguments[first::2])
    return [plain_troff(span) for span in spans]


def bold_words(source):
    """Names set in bold, split at spaces, dots and punctuation: log.level gives log and level.

    A name inside a longer token does not count: batch_size in a bold
    `?table=flows&batch_size=5000` is an example, not its documentation."""
    return {word for span in bold_spans(source) for word in re.split(r"[\s.,:;()]+", span)
            if re.fullmatch(r"[a-z][a-z0-9_]*", word)}


def has_value_after(tag, option):
    """Whether a tag line shows a value after `option` ('--mtu " bytes"'), not just a separator."""
    for m in re.finditer(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", tag):
        rest = tag[m.end():].lstrip(' "')
        if rest and not rest.startswith(",") and not rest.startswith("-"):
            return True
    return False


# --------------------------------------------------------------- YAML keys

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<key>[a-z][a-z0-9_]*):(?:\s+(?P<value>.*))?$")


def uncommented(line):
    """A commented-out line as it would read enabled: '  # - type: x' gives '  - type: x'."""
    m = re.match(r"^( *)# ?(.*)$", line)
    return m.group(1) + m.group(2) if m else line


def scalar(value):
    """A plain or quoted scalar without its trailing comment."""
    value = re.sub(r"\s+#.*$", "", value or "").strip()
    return value.strip("\"'")


def yaml_keys(text):
    """[(path, key, value)] for every mapping key, commented examples included.

    Indentation-aware: the path of `collector` in an exporter item is
    'exporters[].collector'. A comment counts when, without its '#', it
    reads as a key line (lowercase key, colon): prose comments do not."""
    found = []
    stack = [(-1, "")]  # (indentation, path) of the open mappings and list items
    for raw in text.splitlines():
        m = KEY_LINE.match(uncommented(raw))
        if not m:
            continue
        indent = len(m.group("indent"))
        if m.group("dash"):
            while stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, stack[-1][1] + "[]"))
            indent += len(m.group("dash"))
        while stack[-1][0] >= indent:
            stack.pop()
        path = (stack[-1][1] + "." if stack[-1][1] else "") + m.group("key")
        found.append((path, m.group("key"), scalar(m.group("value"))))
        stack.append((indent, path))
    return found


def exporter_types(keys):
    return {value for path, key, value in keys if key == "type" and path.endswith("[].type") and value}


def config_parser_keys():
    """Keys the YAML reader has a handler for: config.cc's Handlers maps and
    the settings table it builds the others from (settings.cc: section, key)."""
    handled = re.findall(r'\{"([a-z][a-z0-9_]*)",\s*\[&\]', read(CONFIG_SOURCE))
    tabled = set()
    for source in [SETTINGS_SOURCE, *EXPORTER_SETTINGS_SOURCES]:
        keys = re.findall(r'\{"[a-z]*",\s*"([a-z][a-z0-9_]*)",\s*"(?:-[^"]*)?",', read(source))
        if not keys:
            raise AssertionError(f"no settings read from {relative(source)}: update this test")
        tabled.update(keys)
    return set(handled) | tabled


def mysql_option_keys():
    """Keys of a `type: mysql` exporter (the sink's one option table)."""
    return set(re.findall(r'\{"([a-z][a-z0-9_]*)",\s*\[\]\(MysqlOptions&', read(MYSQL_OPTIONS_SOURCE)))


def mysql_default_spool_parent():
    """The directory under which the MySQL sink spools by default (mysqlSpoolDir())."""
    body = re.search(r"std::string mysqlSpoolDir\([^)]*\)\s*\{(.*?)\n\}", read(MYSQL_OPTIONS_SOURCE), re.S)
    if not body:
        raise AssertionError(f"mysqlSpoolDir() not found in {relative(MYSQL_OPTIONS_SOURCE)}: update this test")
    literal = re.search(r'"(/[^"]+)"', body.group(1))
    if not literal:
        raise AssertionError("mysqlSpoolDir() has no absolute default path literal: update this test")
    return literal.group(1).rstrip("/")


# -------------------------------------------------------------------- tests

class ManPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help = help_text()
        cls.help_options = help_synopses(cls.help)
        cls.man8 = read(MAN8)
        cls.man5 = read(MAN5)
        cls.man8_sections = sections(cls.man8)
        cls.option_tags = [plain_troff(t) for t in tag_lines(cls.man8_sections.get("OPTIONS", []))]
        cls.documented_options = set().union(*map(options_in, cls.option_tags)) if cls.option_tags else set()
        cls.man5_terms = bold_words(cls.man5)

    def assertAllDocumented(self, wanted, documented, what, where):
        missing = sorted(set(wanted) - set(documented))
        self.assertFalse(missing, f"{what} missing from {where}: " + ", ".join(missing))

    def test_help_lists_options(self):
        # Guards the extraction below: an empty list would make every check pass.
        self.assertIn("--help", self.help_options, "no option found in the output of flowfold --help")
        self.assertGreater(len(self.help_options), 20, f"too few options read from --help: {self.help_options}")

    def test_every_help_option_is_in_flowfold_8(self):
        self.assertAllDocumented(
            self.help_options, self.documented_options,
            "options of flowfold --help", f"{relative(MAN8)} OPTIONS (add a .TP entry for each)")

    def test_options_taking_a_value_show_it_in_flowfold_8(self):
        missing = []
        for option, value in sorted(self.help_options.items()):
            tags = [t for t in self.option_tags if option in options_in(t)]
            if value and tags and not any(has_value_after(t, option) for t in tags):
                missing.append(f"{option} {value}")
        self.assertFalse(missing, f"{relative(MAN8)} OPTIONS shows these options without the value "
                                  "--help gives them: " + ", ".join(missing))

    def test_every_option_in_flowfold_8_exists(self):
        stale = sorted(self.documented_options - set(self.help_options))
        self.assertFalse(stale, f"{relative(MAN8)} OPTIONS documents options that flowfold --help does "
                                "not list (removed or renamed?): " + ", ".join(stale))

    def test_help_lists_every_option_the_parser_accepts(self):
        self.assertAllDocumented(
            parser_options(), self.help_options,
            f"options accepted by {relative(CLI_SOURCE)}", "the usage text of flowfold --help (usageText())")

    def test_every_example_key_is_in_flowfold_yaml_5(self):
        for path in example_configurations():
            with self.subTest(example=relative(path)):
                keys = yaml_keys(read(path))
                self.assertTrue(keys, f"no key read from {relative(path)}")
                missing = sorted({f"{p} ({k})" for p, k, _ in keys if k not in self.man5_terms})
                self.assertFalse(missing, f"keys of {relative(path)} not documented (in bold) in "
                                          f"{relative(MAN5)}: " + ", ".join(missing))

    def test_every_exporter_type_is_in_flowfold_yaml_5(self):
        types = set()
        for path in example_configurations():
            types |= exporter_types(yaml_keys(read(path)))
        self.assertTrue({"ipfix", "mysql"} <= types, f"exporter types read from the examples: {sorted(types)}")
        self.assertAllDocumented(types, self.man5_terms, "exporter types (type: ...) of the examples",
                                 f"{relative(MAN5)} (document each under exporters)")

    def test_every_key_the_parser_accepts_is_in_flowfold_yaml_5(self):
        for source, keys in ((CONFIG_SOURCE, config_parser_keys()), (MYSQL_OPTIONS_SOURCE, mysql_option_keys())):
            with self.subTest(source=relative(source)):
                self.assertGreater(len(keys), 10, f"too few keys read from {relative(source)}: update this test")
                self.assertAllDocumented(keys, self.man5_terms, f"configuration keys read by {relative(source)}",
                                         f"{relative(MAN5)} (in bold)")

    def test_files_names_the_mysql_spool_directory(self):
        spool = mysql_default_spool_parent()
        files = [plain_troff(t) for t in tag_lines(self.man8_sections.get("FILES", []))]
        paths = [word for tag in files for word in tag.split() if word.startswith("/")]
        self.assertTrue(any(p == spool or p.startswith(spool + "/") for p in paths),
                        f"FILES of {relative(MAN8)} does not name the MySQL sink's default spool directory "
                        f"{spool} (mysqlSpoolDir() in {relative(MYSQL_OPTIONS_SOURCE)}); it lists: "
                        + ", ".join(paths))


if __name__ == "__main__":
    unittest.main()
