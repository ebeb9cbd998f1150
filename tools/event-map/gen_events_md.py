"""Regenerates docs/EVENTS.md from EVENTS.template.md, data.py and open_points.md.

Usage, from the repository root: python3 tools/event-map/gen_events_md.py [ROOT [OUT]]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, HERE)
import checks  # noqa: E402
from data import SERVICES, CONSUMERS, NOTES, EVENTS, FEED, FEED_STREAM  # noqa: E402

ROOT = sys.argv[1] if len(sys.argv) > 1 else checks.ROOT
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'docs/EVENTS.md')
checks.run(ROOT)
tpl = open(os.path.join(HERE, 'EVENTS.template.md')).read()
P = 'partner systems'


def cell(s):
    return s.replace('|', '\\|').replace('\n', ' ')


ALL = [('referrals', s) for s in checks.referral_subjects(ROOT)]
for svc in ('assessments', 'delivery', 'evaluation'):
    ALL += [(svc, e[0]) for e in EVENTS[svc]]
assert set(s for _, s in ALL) == set(CONSUMERS), set(CONSUMERS) ^ set(s for _, s in ALL)

# ---- streams --------------------------------------------------------------------------
streams = ['| stream | publisher | subjects it captures | `ce-source` |', '| --- | --- | --- | --- |']
for svc in ('referrals', 'assessments', 'delivery', 'evaluation'):
    who = 'evaluation: domain events' if svc == 'evaluation' else svc
    subs = ', '.join(f'`{x}`' for x in SERVICES[svc]['subjects'])
    streams.append(f'| `{SERVICES[svc]["stream"]}` | {who} | {subs} | `//hearth/{svc}` |')
subs = ', '.join(f'`{x}`' for x in FEED_STREAM['subjects'])
streams.append(f'| `{FEED_STREAM["stream"]}` | evaluation: analyst feed | {subs} '
               '(NATS subject `hearth.evaluation.v1.feed.<entity>.<verb>.<receiving_area>`) | `//hearth/evaluation` |')
streams = '\n'.join(streams)

# ---- counts ---------------------------------------------------------------------------
rows = ['| publisher | stream | events | consumer links declared (events each service consumes) |',
        '| --- | --- | --- | --- |']
links = 0
for svc in ('referrals', 'assessments', 'delivery', 'evaluation'):
    subs = [s for p, s in ALL if p == svc]
    per = {}
    for s in subs:
        for c, _ in CONSUMERS[s]:
            per[c] = per.get(c, 0) + 1
    none = sum(1 for s in subs if not [c for c, _ in CONSUMERS[s] if c != P])
    parts = [f'{c} {n}' for c, n in per.items() if c != P]
    links += sum(n for c, n in per.items() if c != P)
    if P in per:
        parts.append(f'partner systems {per[P]} (named by the publisher)')
    txt = ', '.join(parts) if parts else 'none'
    if none:
        txt += f'; {none} with no Hearth consumer'
    rows.append(f'| {svc} | `{SERVICES[svc]["stream"]}` | {len(subs)} | {txt} |')
rows.append(f'| evaluation (analyst feed) | `ANALYTICS` | {len(FEED)} | analysts and commissioners of the area (outside Hearth) |')
rows.append(f'| **total** | | **{len(ALL)}** domain events + **{len(FEED)}** feed messages | **{links}** declared Hearth consumer links |')
counts = '\n'.join(rows)

# ---- map ------------------------------------------------------------------------------
m = ['| subject (= `ce-type`) | publisher | consumers: what each does with it |',
     '| --- | --- | --- |']
for svc, s in ALL:
    cons = CONSUMERS[s]
    parts = [f'**{c}**: {a}' for c, a in cons]
    if not [c for c, _ in cons if c != P]:
        note, open_point = NOTES.get(s, ('none stated', True))
        txt = f'*no Hearth service consumes it* ({note})'
        if open_point:
            txt += '; see [Open points](#open-points)'
        parts.append(txt)
    m.append(f'| `{s}` | {svc} | {cell("<br>".join(parts))} |')
m.append(f'| `hearth.evaluation.v1.feed.<entity>.<verb>.<receiving_area>` (the {len(FEED)} feed subjects, [below](#subjects-and-what-they-are-built-from)) | evaluation (stream `ANALYTICS`) | **analysts and commissioners** of that area load it into their own tools. No Hearth service consumes the feed. |')
emap = '\n'.join(m)


# ---- catalogues -----------------------------------------------------------------------
def catalogue(svc):
    r = ['| subject (= `ce-type`) | payload | `ce-subject` | published when | personal data carried | why it travels |',
         '| --- | --- | --- | --- | --- | --- |']
    for subj, msg, cesubj, when, pdata, why in EVENTS[svc]:
        r.append(f'| `{subj}` | `{msg}` | {cell(cesubj)} | {cell(when)} | {cell(pdata)} | {cell(why)} |')
    return '\n'.join(r)


# ---- feed -----------------------------------------------------------------------------
f = ['| `ce-type` (the NATS subject adds `.<receiving_area>`) | payload | built from | pseudonymous ids it carries | `ce-subject` |',
     '| --- | --- | --- | --- | --- |']
for ev, msg, built, ids, cesubj in FEED:
    f.append(f'| `hearth.evaluation.v1.feed.{ev}` | `{msg}` | {cell(built)} | {cell(ids)} | {cell(cesubj)} |')
feed = '\n'.join(f)

OPEN = open(os.path.join(HERE, 'open_points.md')).read().strip()

out = (tpl.replace('<!--STREAMS-->', streams).replace('<!--COUNTS-->', counts)
          .replace('<!--MAP-->', emap)
          .replace('<!--CAT_assessments-->', catalogue('assessments'))
          .replace('<!--CAT_delivery-->', catalogue('delivery'))
          .replace('<!--CAT_evaluation-->', catalogue('evaluation'))
          .replace('<!--FEED-->', feed).replace('<!--OPEN-->', OPEN))
assert '<!--' not in out
open(OUT, 'w').write(out)
print(f'wrote {os.path.relpath(OUT, ROOT)}: domain events {len(ALL)}, feed messages {len(FEED)}, '
      f'consumer links {links}')
