"""Regenerates docs/asyncapi.yaml.

The referral channels, messages, send summaries and schemas are hand-written and kept
from asyncapi_referrals.yaml (the referrals service's original AsyncAPI file); the
document head comes from asyncapi_head.yaml; everything else is generated from the
protos (protoparse.py) and data.py.

Usage, from the repository root:
    python3 tools/event-map/gen_asyncapi.py [ROOT [SRC [OUT]]]
"""
import json, os, re, sys, textwrap
HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, HERE)
import checks  # noqa: E402
import protoparse as pp  # noqa: E402
from data import SERVICES, CONSUMERS, NOTES, EVENTS, FEED, FEED_STREAM  # noqa: E402

ROOT = sys.argv[1] if len(sys.argv) > 1 else checks.ROOT
SRC = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, 'asyncapi_referrals.yaml')
OUT = sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, 'docs/asyncapi.yaml')
checks.run(ROOT)

types = pp.parse_all(ROOT)
src = open(SRC).read().split('\n')

def block(start_pat, end_pat):
    s = next(i for i, l in enumerate(src) if re.match(start_pat, l))
    e = next(i for i, l in enumerate(src) if i > s and re.match(end_pat, l))
    return src[s:e]

# ---- preserved referral text ---------------------------------------------------------
ref_messages = block(r'^    ReferralReceived:$', r'^  schemas:$')
while ref_messages and ref_messages[-1].strip() == '':
    ref_messages.pop()
ref_messages = [l.replace("'#/components/schemas/CloudEventsHeaders'",
                          "'#/components/schemas/ReferralsHeaders'") for l in ref_messages]
ref_schemas = src[next(i for i, l in enumerate(src) if l == '    Timestamp:'):]
while ref_schemas and ref_schemas[-1].strip() == '':
    ref_schemas.pop()

# existing referral send-operation summaries
ref_summaries = {}
cur = None
for l in src:
    m = re.match(r'^  (send\w+):$', l)
    if m: cur = m.group(1)
    m = re.match(r'^    channel:$', l)
    m2 = re.match(r"^      \$ref: '#/channels/(\w+)'$", l)
    if cur and m2: ref_summaries.setdefault(cur, {})['channel'] = m2.group(1)
    m3 = re.match(r'^    summary: (.*)$', l)
    if cur and m3:
        ref_summaries[cur]['summary'] = m3.group(1)
# multi-line summaries (>-): collect
i = 0
while i < len(src):
    m = re.match(r'^  (send\w+):$', src[i])
    if m:
        cur = m.group(1)
        j = i + 1
        while j < len(src) and (src[j].startswith('    ') or src[j] == ''):
            if src[j].startswith('    summary: >-'):
                k = j + 1; parts = []
                while src[k].startswith('      '):
                    parts.append(src[k].strip()); k += 1
                ref_summaries[cur]['summary'] = ' '.join(parts)
            j += 1
    i += 1

# ---- YAML emitter --------------------------------------------------------------------
PLAIN = re.compile(r"^[A-Za-z0-9_/(][^\n]*$")
def scalar(v, key, indent):
    if isinstance(v, bool): return 'true' if v else 'false'
    if isinstance(v, (int, float)): return str(v)
    if key == '$ref': return "'" + v + "'"
    width = 88 - indent
    simple = (PLAIN.match(v) and ': ' not in v and ' #' not in v and not v.endswith(':')
              and v.lower() not in ('true', 'false', 'yes', 'no', 'null', 'on', 'off')
              and not re.match(r'^[\d.]+$', v) and '`' not in v[:1] and '{' not in v
              and '"' not in v[:1] and "'" not in v[:1] and not v.startswith(('*', '&', '!', '%', '@', '-', '?', '|', '>')))
    if len(v) + len(key) + indent + 2 <= 88 and simple:
        return v
    if len(v) + len(key) + indent + 2 <= 88:
        return json.dumps(v, ensure_ascii=False)
    lines = textwrap.wrap(v, width=width, break_long_words=False, break_on_hyphens=False)
    pad = ' ' * (indent + 2)
    return '>-\n' + '\n'.join(pad + l for l in lines)

def emit(obj, indent=0, out=None):
    pad = ' ' * indent
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                if not v:
                    out.append(f'{pad}{k}: {{}}')
                else:
                    out.append(f'{pad}{k}:'); emit(v, indent + 2, out)
            elif isinstance(v, list):
                if not v:
                    out.append(f'{pad}{k}: []')
                else:
                    out.append(f'{pad}{k}:'); emit(v, indent + 2, out)
            else:
                out.append(f'{pad}{k}: {scalar(v, k, indent)}')
    elif isinstance(obj, list):
        for it in obj:
            if isinstance(it, dict):
                sub = []
                emit(it, indent + 2, sub)
                sub[0] = pad + '- ' + sub[0][indent + 2:]
                out.extend(sub)
            else:
                out.append(f'{pad}- {scalar(it, "", indent + 2)}')
    return out

# ---- helpers ---------------------------------------------------------------------------
def camel(*parts):
    words = []
    for p in parts:
        words += re.split(r'[._]', p)
    return words[0] + ''.join(w[:1].upper() + w[1:] for w in words[1:])
def cap(s): return s[:1].upper() + s[1:]
def human(ev):  # 'plan.team_changed' -> 'Plan team changed'
    t = ev.replace('.', ' ').replace('_', ' ')
    return t[:1].upper() + t[1:]

SCALARS = {
    'string': {'type': 'string'}, 'bool': {'type': 'boolean'},
    'int32': {'type': 'integer', 'format': 'int32'}, 'sint32': {'type': 'integer', 'format': 'int32'},
    'uint32': {'type': 'integer', 'format': 'int32'},
    'int64': {'type': 'string', 'description': 'int64 (a string in the proto3 JSON mapping)'},
    'uint64': {'type': 'string'}, 'double': {'type': 'number'}, 'float': {'type': 'number'},
    'bytes': {'type': 'string', 'format': 'byte'},
}
WKT = {
    'google.protobuf.Timestamp': {'$ref': '#/components/schemas/Timestamp'},
    'google.protobuf.Duration': {'type': 'string', 'description': 'google.protobuf.Duration, e.g. "5400s" in the proto3 JSON mapping.'},
    'google.protobuf.FieldMask': {'type': 'string', 'description': 'google.protobuf.FieldMask: the changed field paths, comma-separated in the proto3 JSON mapping.'},
}
EXPAND_FILES = {v['file'] for v in SERVICES.values()} | {'proto/hearth/evaluation/v1/feed.proto'}

schemas = {}      # key -> schema dict (generated)
order = []
PRESERVED = {'Timestamp', 'Date', 'ReferralRef', 'Source', 'Route', 'ConsentScope', 'Decision',
             'Consent', 'Referral', 'ReferralReceived', 'FamilyLinked', 'ReferralAccepted',
             'ReferralSignposted', 'ReferralRedirected', 'ReferralDeclined', 'ReferralWithdrawn',
             'ContactRecorded', 'ConsentRecorded', 'ConsentWithdrawn', 'ParentingOrder',
             'ParentingOrderRecorded', 'FamilyCorrected'}

def key_for(t):
    if t.full == 'hearth.type.v1.Date': return 'Date'
    if isinstance(t, pp.Msg) and t.file in EXPAND_FILES: return t.name
    return t.full

KEYFULL = {}
def add_schema(t):
    k = key_for(t)
    if KEYFULL.setdefault(k, t.full) != t.full:
        raise SystemExit(f'schema key clash {k}: {KEYFULL[k]} vs {t.full}')
    if k in schemas or k in PRESERVED: return k
    schemas[k] = None; order.append(k)
    if isinstance(t, pp.Enum):
        schemas[k] = {'type': 'string',
                      'description': f'{t.full} ({t.file}); the value name in the proto3 JSON mapping.',
                      'enum': [v for v, _ in t.values]}
    elif t.file in EXPAND_FILES or t.file.startswith('proto/hearth/type/'):
        schemas[k] = message_schema(t)
    else:
        names = ', '.join(f[2] for f in t.fields)
        schemas[k] = {'type': 'object',
                      'description': f'{t.full}, defined in {t.file}, carried whole; see the '
                                     f'proto for its fields ({names}).'}
    return k

def field_schema(scope, label, ftype, comment):
    if ftype.startswith('map<'):
        s = {'type': 'object', 'additionalProperties': True}
    elif ftype in SCALARS:
        s = dict(SCALARS[ftype])
    elif ftype in WKT:
        s = dict(WKT[ftype])
    else:
        t = pp.resolve(types, scope.full, ftype)
        if t is None:
            raise SystemExit(f'unresolved type {ftype} in {scope.full}')
        s = {'$ref': '#/components/schemas/' + add_schema(t)}
    if label == 'repeated':
        s = {'type': 'array', 'items': s}
        if comment: s = {'type': 'array', 'description': comment, 'items': s['items']}
    elif comment:
        if '$ref' in s:
            s = {'description': comment, 'allOf': [s]}
        else:
            d = s.pop('description', None)
            s = {**s, 'description': comment + ((' ' + d) if d else '')}
    return s

def message_schema(t, extra=''):
    props = {}
    for label, ftype, name, comment in t.fields:
        props[name] = field_schema(t, label, ftype, comment)
    desc = f'Protobuf message {t.full}, defined in {t.file}.'
    if t.comment and t.file.startswith('proto/hearth/type/'):
        desc += ' ' + t.comment
    if extra: desc += ' ' + extra
    s = {'type': 'object', 'description': desc}
    if props: s['properties'] = props
    return s

def payload_schema(msgname, pkg, extra):
    t = types[f'{pkg}.{msgname}']
    k = key_for(t)
    if k in schemas and schemas[k] is not None and k not in order[-1:]:
        pass
    schemas[k] = None
    if k not in order: order.append(k)
    schemas[k] = message_schema(t, extra)
    return k

# ---- headers ---------------------------------------------------------------------------
def headers_schema(service, subject_desc, subject_pattern=None, feed=False):
    req = ['ce-id', 'Nats-Msg-Id', 'ce-type', 'ce-source', 'ce-subject', 'ce-time',
           'ce-specversion', 'content-type']
    if feed:
        type_pat = r'^hearth\.evaluation\.v1\.feed\.[a-z_]+\.[a-z_]+$'
        type_desc = ('hearth.evaluation.v1.feed.<entity>.<verb>: the NATS subject without its '
                     'last (area) token.')
        id_desc = 'A fresh UUID for the feed message, never the upstream event\'s id. Consumers de-duplicate on it.'
        time_desc = ('When the feed message was written, not when the upstream event occurred '
                     '(that travels in the payload, as a date only). RFC 3339 UTC.')
    else:
        type_pat = r'^hearth\.' + service + r'\.v1\.[a-z_]+\.[a-z_]+$'
        type_desc = f'The NATS subject, e.g. {EXAMPLE[service]}.'
        id_desc = 'Event id (UUID v7). Consumers de-duplicate on it.'
        time_desc = "When it happened (the payload's occur_time), RFC 3339 UTC with microseconds."
    props = {
        'ce-id': {'type': 'string', 'format': 'uuid', 'description': id_desc},
        'Nats-Msg-Id': {'type': 'string', 'format': 'uuid',
                        'description': "Same value as ce-id; JetStream drops repeats within its duplicate window."},
        'ce-type': {'type': 'string', 'description': type_desc, 'pattern': type_pat},
        'ce-source': {'type': 'string', 'const': '//hearth/evaluation' if feed else f'//hearth/{service}'},
        'ce-subject': {'type': 'string', 'description': subject_desc},
        'ce-time': {'type': 'string', 'format': 'date-time', 'description': time_desc},
        'ce-specversion': {'type': 'string', 'const': '1.0'},
        'content-type': {'type': 'string', 'const': 'application/protobuf'},
    }
    if subject_pattern: props['ce-subject']['pattern'] = subject_pattern
    if not feed:
        props['traceparent'] = {
            'type': 'string',
            'description': 'W3C trace context of the gRPC call that caused the event; present only when that call was traced.',
            'pattern': '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'}
    if feed:
        desc = ('CloudEvents 1.0 binary-mode attributes of the analyst feed (stream ANALYTICS), '
                'as proto/hearth/evaluation/v1/feed.proto specifies. They differ from the domain '
                'streams on purpose: ce-id is fresh, ce-time is the write time, ce-subject is '
                'pseudonymous, and there is no traceparent, so that a feed record cannot be '
                'linked back to the raw event and so to the family.')
    elif service == 'referrals':
        desc = ('CloudEvents 1.0 binary-mode attributes and NATS headers set by the outbox relay '
                '(libs/hearth-platform/src/outbox.rs) for the referrals service.')
    else:
        desc = (f'CloudEvents 1.0 binary-mode attributes and NATS headers of the {service} '
                f'service, as {SERVICES[service]["file"]} specifies (same envelope as referrals; '
                'the service has no code yet).')
    return {'type': 'object', 'description': desc, 'required': req, 'properties': props}

EXAMPLE = {'referrals': 'hearth.referrals.v1.referral.accepted',
           'assessments': 'hearth.assessments.v1.assessment.completed',
           'delivery': 'hearth.delivery.v1.enrolment.waitlisted',
           'evaluation': 'hearth.evaluation.v1.measurement.recorded'}
HEADER_KEY = {s: cap(s) + 'Headers' for s in SERVICES}
header_schemas = {
    'ReferralsHeaders': headers_schema('referrals',
        'The referral the event is about, referrals/{referral_id} (also for contact and consent events).',
        '^referrals/[0-9a-f-]+$'),
    'AssessmentsHeaders': headers_schema('assessments',
        'The resource the event is about, named on each event: the framework version (framework.published), the assessment, the recommendation set, or the plan.'),
    'DeliveryHeaders': headers_schema('delivery',
        'The resource the event is about, named on each event: programme, accreditation, training, cohort, register, enrolment or order notice.'),
    'EvaluationHeaders': headers_schema('evaluation',
        'The resource the event is about: the measurement.'),
    'AnalyticsFeedHeaders': headers_schema('evaluation',
        'The pseudonymous id (<kind>_<26 characters>, e.g. enr_...) of the message\'s main entity, never a resource name of a person or a record about one. For a message with no pseudonymous entity (feed.epoch.started, feed.cohort.completed, feed.attendance.recorded for a group session, feed.training.delivered): areas/{receiving_area}/feed, e.g. areas/bath-and-north-east-somerset/feed. An individual session\'s feed.attendance.recorded has the enrolment\'s enr_... id.', feed=True),
}

# ---- channels, operations, messages ----------------------------------------------------
channels, operations, messages = {}, {}, {}
CONSUMER_TAG = {'referrals': 'referrals', 'assessments': 'assessments', 'delivery': 'delivery', 'evaluation': 'evaluation',
                'partner systems': 'partners'}
CONSUMER_PREFIX = {'referrals': 'referrals', 'assessments': 'assessments', 'delivery': 'delivery', 'evaluation': 'evaluation',
                   'partner systems': 'partners'}

# referral channels keep their existing keys and titles
REF_CHANNELS = []
cur = None
in_channels = False
for l in src:
    if l == 'channels:': in_channels = True; continue
    if l == 'operations:': break
    if not in_channels: continue
    m = re.match(r'^  (\w+):$', l)
    if m: cur = {'key': m.group(1)}; REF_CHANNELS.append(cur)
    m = re.match(r'^    address: (\S+)$', l)
    if m: cur['address'] = m.group(1)
    m = re.match(r'^    title: (.*)$', l)
    if m: cur['title'] = m.group(1)

ref_msg = dict(checks.proto_events(ROOT, SERVICES['referrals']['file']))

def receive_ops(chan_key, subject, msg_key):
    for consumer, action in CONSUMERS[subject]:
        opk = f'{CONSUMER_PREFIX[consumer]}Receives{cap(chan_key)}'
        operations[opk] = {
            'action': 'receive',
            'channel': {'$ref': f'#/channels/{chan_key}'},
            'title': f'{consumer} receives {subject.split(".v1.")[1]}',
            'summary': (('Partner systems: ' + action) if consumer == 'partner systems' else cap(action))
                       + ('.' if not action.endswith('.') else ''),
            'tags': [{'name': CONSUMER_TAG[consumer]}],
            'messages': [{'$ref': f'#/channels/{chan_key}/messages/{msg_key}'}],
        }

for ch in REF_CHANNELS:
    subj = ch['address']
    mk = ch['key']
    channels[mk] = {
        'address': subj, 'title': ch['title'],
        'description': f'Published by referrals on stream REFERRALS. ce-type: {subj}.',
        'messages': {mk: {'$ref': f'#/components/messages/{ref_msg[subj]}'}},
    }
    opk = 'send' + cap(mk)
    operations[opk] = {
        'action': 'send', 'channel': {'$ref': f'#/channels/{mk}'},
        'summary': ref_summaries[opk]['summary'],
        'tags': [{'name': 'referrals'}],
        'messages': [{'$ref': f'#/channels/{mk}/messages/{mk}'}],
    }
    receive_ops(mk, subj, mk)

for service in ('assessments', 'delivery', 'evaluation'):
    pkg = f'hearth.{service}.v1'
    for subj, msgname, cesubj, when, pdata, why in EVENTS[service]:
        ev = subj.split('.v1.')[1]
        ck = camel(service, ev)
        mk = camel(ev)
        channels[ck] = {
            'address': subj, 'title': human(ev),
            'description': f'Published by {service} on stream {SERVICES[service]["stream"]}. '
                           f'ce-type: {subj}. ce-subject: {cesubj}.',
            'messages': {mk: {'$ref': f'#/components/messages/{msgname}'}},
        }
        opk = 'send' + cap(ck)
        operations[opk] = {
            'action': 'send', 'channel': {'$ref': f'#/channels/{ck}'},
            'summary': f'{when}.', 'tags': [{'name': service}],
            'messages': [{'$ref': f'#/channels/{ck}/messages/{mk}'}],
        }
        if not [c for c, _ in CONSUMERS[subj] if c != 'partner systems']:
            note, open_point = NOTES.get(subj, ('none stated', True))
            operations[opk]['description'] = (
                'No Hearth service consumes this event (' + note + ').'
                + (' See Open points in docs/EVENTS.md.' if open_point else ''))
        receive_ops(ck, subj, mk)
        sk = payload_schema(msgname, pkg, f'ce-subject: {cesubj}. Personal data: {pdata}')
        messages[msgname] = {
            'name': msgname, 'title': human(ev),
            'summary': pdata.split('. ')[0].rstrip('.') + '.',
            'description': f'Personal data: {pdata} Why: {why}',
            'contentType': 'application/protobuf',
            'tags': [{'name': service}],
            'headers': {'$ref': f'#/components/schemas/{HEADER_KEY[service]}'},
            'payload': {'$ref': f'#/components/schemas/{sk}'},
        }

for ev, msgname, built, main, cesubj in FEED:
    ce_type = f'hearth.evaluation.v1.feed.{ev}'
    ck = camel('feed', ev)
    mk = camel('feed', ev)
    channels[ck] = {
        'address': ce_type + '.{receiving_area}', 'title': 'Feed: ' + human(ev)[0].lower() + human(ev)[1:],
        'description': f'Analyst feed, stream ANALYTICS. ce-type: {ce_type} (the subject without the area token). ce-subject: {cesubj}. Built from: {built}.',
        'parameters': {'receiving_area': {'$ref': '#/components/parameters/receiving_area'}},
        'messages': {mk: {'$ref': f'#/components/messages/{msgname}'}},
    }
    operations['send' + cap(ck)] = {
        'action': 'send', 'channel': {'$ref': f'#/channels/{ck}'},
        'summary': f'evaluation writes it to the analyst feed; built from {built}.',
        'tags': [{'name': 'evaluation'}, {'name': 'analytics-feed'}],
        'messages': [{'$ref': f'#/channels/{ck}/messages/{mk}'}],
    }
    operations['analystsReceive' + cap(ck)] = {
        'action': 'receive', 'channel': {'$ref': f'#/channels/{ck}'},
        'summary': "An area's named analysts load it into their own tools (subscribe to hearth.evaluation.v1.feed.*.*.<receiving_area>).",
        'tags': [{'name': 'analysts'}, {'name': 'analytics-feed'}],
        'messages': [{'$ref': f'#/channels/{ck}/messages/{mk}'}],
    }
    t = types[f'hearth.evaluation.v1.{msgname}']
    sk = payload_schema(msgname, 'hearth.evaluation.v1', f'Pseudonymous ids it carries: {main}.')
    messages[msgname] = {
        'name': msgname, 'title': 'Feed: ' + human(ev)[0].lower() + human(ev)[1:],
        'summary': (t.comment.split(': ', 1)[1] if ': ' in t.comment else t.comment).split('. ')[0].rstrip('.') + '.',
        'contentType': 'application/protobuf',
        'tags': [{'name': 'analytics-feed'}],
        'headers': {'$ref': '#/components/schemas/AnalyticsFeedHeaders'},
        'payload': {'$ref': f'#/components/schemas/{sk}'},
    }

# ---- assemble -------------------------------------------------------------------------
HEADER = open(os.path.join(os.path.dirname(__file__), 'asyncapi_head.yaml')).read().rstrip('\n').split('\n')
out = list(HEADER)
out.append('')
out.append('channels:')
emit(channels, 2, out)
out.append('')
out.append('operations:')
emit(operations, 2, out)
out.append('')
out.append('components:')
out.append('  parameters:')
emit({'receiving_area': {'description': 'The receiving area (organisation id), e.g. bath-and-north-east-somerset. NATS permissions give an area\'s analysts hearth.evaluation.v1.feed.*.*.<receiving_area> and nothing else.'}}, 4, out)
out.append('')
out.append('  messages:')
out.extend(ref_messages)
emit(messages, 4, out)
out.append('')
out.append('  schemas:')
emit(header_schemas, 4, out)
out.append('')
out.extend(ref_schemas)
out.append('')
emit({k: schemas[k] for k in order}, 4, out)
open(OUT, 'w').write('\n'.join(out) + '\n')
print(f'wrote {os.path.relpath(OUT, ROOT)}: channels', len(channels), 'operations', len(operations),
      'messages', len(messages) + len(REF_CHANNELS),
      'schemas', len(order) + len(header_schemas) + len(PRESERVED))
