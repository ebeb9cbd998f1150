"""Tiny proto3 parser: messages, enums, fields, leading comments. Enough for Hearth."""
import re, glob, os

class Msg:
    def __init__(s, name, full, pkg, file, comment):
        s.name, s.full, s.pkg, s.file, s.comment = name, full, pkg, file, comment
        s.fields = []  # (label, type, name, comment)
class Enum:
    def __init__(s, name, full, pkg, file, comment):
        s.name, s.full, s.pkg, s.file, s.comment = name, full, pkg, file, comment
        s.values = []  # (name, comment)

def parse_all(root):
    types = {}
    for f in sorted(glob.glob(os.path.join(root, 'proto/**/*.proto'), recursive=True)):
        rel = os.path.relpath(f, root)
        parse_file(f, rel, types)
    return types

def parse_file(path, rel, types):
    lines = open(path).read().split('\n')
    pkg = ''
    stack = []   # list of (kind, obj)
    comment = []
    for raw in lines:
        l = raw.strip()
        m = re.match(r'package ([\w.]+);', l)
        if m: pkg = m.group(1); continue
        if l.startswith('//'):
            comment.append(l[2:].strip()); continue
        if l == '':
            comment = []; continue
        m = re.match(r'(message|enum|oneof|service) (\w+) \{', l)
        if m:
            kind, name = m.groups()
            if kind in ('message', 'enum'):
                parents = [o.name for k, o in stack if k == 'message']
                full = '.'.join([pkg] + parents + [name])
                obj = (Msg if kind == 'message' else Enum)(name, full, pkg, rel, ' '.join(comment))
                types[full] = obj
                stack.append((kind, obj))
            else:
                stack.append((kind, None))
            if l.endswith('}'):  # an empty body on one line, e.g. `message Foo {}`
                stack.pop()
            comment = []
            continue
        if l.startswith('}'):
            if stack: stack.pop()
            comment = []; continue
        if not stack: comment = []; continue
        # innermost message or enum (skip oneof wrappers)
        owner = None
        for k, o in reversed(stack):
            if k in ('message', 'enum'): owner = (k, o); break
        if owner is None: comment = []; continue
        k, o = owner
        if k == 'enum':
            m = re.match(r'(\w+) = (-?\d+);', l)
            if m: o.values.append((m.group(1), ' '.join(comment)))
        else:
            m = re.match(r'(repeated |optional )?(map<\s*[\w.]+\s*,\s*[\w.]+\s*>|[\w.]+) (\w+) = (\d+)', l)
            if m:
                label = (m.group(1) or '').strip()
                o.fields.append((label, m.group(2).replace(' ', ''), m.group(3), ' '.join(comment)))
        comment = []

def resolve(types, scope_full, tname):
    """Resolve a type name as protoc would, from within message scope_full."""
    if tname.startswith('.'): return types.get(tname[1:])
    parts = scope_full.split('.')
    while parts:
        cand = '.'.join(parts + [tname])
        if cand in types: return types[cand]
        parts.pop()
    return types.get(tname)
