#!/usr/bin/env python3
"""Print the names PHP reports for the extensions a spec enables, one a line.

Usage: php-extensions.py SPEC

The spec lists extensions by the name of their ini file in mods-available
(opcache, pdo, simplexml). get_loaded_extensions() reports the name of the
module entry instead, which differs in case or wording for a few of them;
NAMES contains those, taken from the zend_module_entry names in PHP 8.2's
sources. Every other extension reports its ini name.

The spec is read without a YAML library: the 'extensions:' key under the
top-level 'php:' key, as a [a, b] list or '- a' lines.
"""

import re
import sys

NAMES = {
    "opcache": "Zend OPcache",
    "pdo": "PDO",
    "simplexml": "SimpleXML",
    "phar": "Phar",
    "ffi": "FFI",
}


def read_extensions(lines):
    in_php = False
    for i, line in enumerate(lines):
        if re.match(r"php:\s*(#.*)?$", line):
            in_php = True
            continue
        if in_php and line.strip() and not line[0].isspace() and not line.startswith("#"):
            break
        if not in_php:
            continue
        match = re.match(r"(\s+)extensions:\s*(.*)$", line)
        if not match:
            continue
        rest = re.sub(r"(^|\s)#.*$", "", match.group(2)).strip()
        if rest.startswith("["):
            return [x.strip().strip("'\"") for x in rest.strip("[]").split(",") if x.strip()]
        indent = len(match.group(1))
        items = []
        for item_line in lines[i + 1:]:
            text = re.sub(r"(^|\s)#.*$", "", item_line).strip()
            if not text:
                continue
            item = re.match(r"-\s+(\S+)$", text)
            if not item or len(item_line) - len(item_line.lstrip()) < indent:
                break
            items.append(item.group(1).strip("'\""))
        return items
    return []


def main(argv):
    if len(argv) != 1:
        print("usage: php-extensions.py SPEC", file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        print("php-extensions.py: cannot read %s: %s" % (argv[0], e.strerror), file=sys.stderr)
        return 2
    extensions = read_extensions(lines)
    if not extensions:
        print("php-extensions.py: %s enables no php extensions" % argv[0], file=sys.stderr)
        return 1
    for name in extensions:
        print(NAMES.get(name, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
