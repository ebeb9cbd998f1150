# Event map data for docs/EVENTS.md and docs/asyncapi.yaml, transcribed by hand from
# proto/hearth/*/v1/events.proto and proto/hearth/evaluation/v1/feed.proto.
#
# The protos are the source of truth. checks.py compares this file with them when the
# generators run: every event subject and payload message (in proto order), every feed
# message, and every consumer link declared in an events.proto "consumes" header.

SERVICES = {
    'referrals': dict(stream='REFERRALS', file='proto/hearth/referrals/v1/events.proto',
                      subjects=['hearth.referrals.v1.>']),
    'assessments': dict(stream='ASSESSMENTS', file='proto/hearth/assessments/v1/events.proto',
                        subjects=['hearth.assessments.v1.>']),
    'delivery': dict(stream='DELIVERY', file='proto/hearth/delivery/v1/events.proto',
                     subjects=['hearth.delivery.v1.>']),
    'evaluation': dict(stream='EVALUATION', file='proto/hearth/evaluation/v1/events.proto',
                       subjects=['hearth.evaluation.v1.instrument.>',
                                 'hearth.evaluation.v1.measurement.>',
                                 'hearth.evaluation.v1.feedback.>']),
}
FEED_STREAM = dict(stream='ANALYTICS', file='proto/hearth/evaluation/v1/feed.proto',
                   subjects=['hearth.evaluation.v1.feed.>'])

# Consumer actions. Key: subject. Value: list of (consumer, what it does).
# Consumers: as declared in the "What this service consumes" sections of the
# events.proto headers. Partner systems are listed only where the publisher names them.
A = 'assessments'
D = 'delivery'
E = 'evaluation'
P = 'partner systems'

_DECIDED = "funnel, time to decision (`feed.referral.decided`)"
_DROP_COPY = ("the referral will never be assessed: drops its copy of that referral's personal "
              "data, keeping only ids and the decision (family data still needed for another "
              "referral it holds is kept)")
_NO_ENROLMENT = ("the referral will never take an enrolment: CreateEnrolment refuses any later one "
                 "(`REFERRAL_NOT_ACCEPTED`), and delivery drops its copy of that referral's "
                 "personal data (data minimisation), keeping only ids and the decision (family "
                 "data still needed for another referral it holds is kept). No enrolment is "
                 "affected: decisions are made only from *received* and are final, and "
                 "enrolments wait for an acceptance or a signpost, so the referral has none")
_COHORT_COPY = ("its copy of cohorts and their schedules (state, times, start date, places, "
                "crèche, whether joining is still allowed), for matching cohorts")
_PARTICIPATION = ("the family plan's programme participation, shown at reviews and weighed "
                  "when stepping down")
_MEASURED = ("the family plan shows the measured change per programme (goal and confidence "
             "progress) at reviews")

CONSUMERS = {
    # --- referrals ---
    'hearth.referrals.v1.referral.received': [
        (A, "keeps its own copy of the family (children's dates of birth for ages, adults and their parenting roles, language and access needs, postcode for locality), reasons, safeguarding flag, route and consents"),
        (D, "keeps the family (children's dates of birth and due dates for age ranges and pathways, adults in a parenting role as participants), access needs as enrolment defaults, consents (programme referral), route and Parenting Order (responsible officer)"),
        (E, "derives age bands, teenage parents, roles, referrer-reported ethnicity, language, access needs, postcode district, locality, deprivation and rurality, source, reasons, urgency, route and Parenting Order; discards names, phone numbers, NHS numbers and free text on receipt. Feeds `feed.referral.received`, `feed.referral.placed`, `feed.member.profiled`"),
    ],
    'hearth.referrals.v1.family.linked': [
        (A, "files the new referral under the family it already holds"),
        (D, "files the referral, and any enrolments made from it, under the family it already knows, so that `ALREADY_ENROLLED`, waitlist priority, pathway progress and access see one family (referrals never merges two families, so nothing is merged)"),
        (E, "repeat referrals; counts families once"),
    ],
    'hearth.referrals.v1.referral.accepted': [
        (A, "creates the NOT_STARTED assessment (`assessment.queued`), or folds the referral into the family's open assessment (`additional_referrals`)"),
        (D, "the referral may now take enrolments on any programme (CreateEnrolment refuses them before a decision, `REFERRAL_NOT_ACCEPTED`)"),
        (E, _DECIDED),
    ],
    'hearth.referrals.v1.referral.signposted': [
        (A, _DROP_COPY),
        (D, "the referral may take enrolments on universal offers only: programmes placed at a level whose tier is `NEED_TIER_UNIVERSAL` (`SIGNPOSTED_UNIVERSAL_ONLY` otherwise)"),
        (E, _DECIDED),
    ],
    'hearth.referrals.v1.referral.redirected': [
        (A, _DROP_COPY),
        (D, _NO_ENROLMENT),
        (E, _DECIDED),
    ],
    'hearth.referrals.v1.referral.declined': [
        (A, _DROP_COPY),
        (D, _NO_ENROLMENT),
        (E, "funnel, decline reasons, time to decision (`feed.referral.decided`)"),
    ],
    'hearth.referrals.v1.referral.withdrawn': [
        (A, _DROP_COPY),
        (D, _NO_ENROLMENT),
        (E, _DECIDED),
    ],
    'hearth.referrals.v1.contact.recorded': [
        (E, "time to first contact (`feed.referral.contacted`, first successful contact only)"),
    ],
    'hearth.referrals.v1.consent.recorded': [
        (A, "the consent gate for assessments (ASSESSMENT), recommendations (PROGRAMME_REFERRAL) and partner agencies on the plan (SHARE_WITH_PARTNERS): the family's consents in force on any of its referrals in the area count"),
        (D, "a programme-referral consent given after the referral, which CreateEnrolment's consent check needs; the family's consents on any of its referrals in the area count (marked \"added to the agreed map\")"),
        (E, "the evaluation-consent gate: whose measurements and feedback may be recorded, and who may appear in the analyst feed"),
    ],
    'hearth.referrals.v1.consent.withdrawn': [
        (A, "from the withdraw time: ASSESSMENT stops the family's open assessments unless court-ordered (`assessment.stopped`) and blocks new ones; PROGRAMME_REFERRAL withdraws the issued recommendations (`recommendations.withdrawn`) and blocks new ones unless court-ordered; SHARE_WITH_PARTNERS confines the plan to the lead professional's organisation (`plan.team_changed`); EVALUATION drops the measured change (`measured_changes`) from the family's plans"),
        (D, "programme-referral scope: withdraws voluntary enrolments not yet enrolled and drops out enrolled ones (`enrolment.withdrawn`, `enrolment.dropped_out`); court-ordered ones are unaffected"),
        (E, "the evaluation-consent gate; the family's measurements, comments and quotes drop out of reports and the family leaves the feed (`feed.family.withdrawn`)"),
    ],
    # --- assessments ---
    'hearth.assessments.v1.framework.published': [
        (D, "checks programmes' level placements (framework, level id, ordinal) and fills in level names and tiers (marked \"added to the agreed map\")"),
        (E, "levels, tiers and domains for labels and level filters"),
    ],
    'hearth.assessments.v1.framework.updated': [
        (E, "the framework's current name for labels and level filters, and which framework is the area's default for new assessments"),
    ],
    'hearth.assessments.v1.framework.retired': [
        (D, "no new programme placements at the retired framework's levels; existing placements and enrolments' levels of need stay (marked \"added to the agreed map\")"),
        (E, "marks the framework retired in labels and level filters, keeping its history"),
    ],
    'hearth.assessments.v1.assessment.queued': [
        (E, "ties the accepted referral to its assessment from the start: time from acceptance to assessment, the wait between queueing and starting, assessments waiting"),
    ],
    'hearth.assessments.v1.assessment.started': [
        (E, "funnel; time from acceptance to assessment"),
    ],
    'hearth.assessments.v1.assessment.completed': [
        (D, "the decided level of need, for waitlist priority"),
        (E, "levels, tiers, overrides, domain ratings, presenting needs, time to assessment (`feed.assessment.completed`)"),
    ],
    'hearth.assessments.v1.assessment.superseded': [
        (E, "counts only the newer assessment; change between assessments (`feed.assessment.superseded`)"),
    ],
    'hearth.assessments.v1.assessment.stopped': [
        (E, "the funnel's \"not assessed\", by stop reason, for every referral the assessment answered (`feed.assessment.stopped`)"),
    ],
    'hearth.assessments.v1.recommendations.issued': [
        (D, "shows coordinators the candidates to offer or waitlist (never an enrolment by itself); when the set replaces an earlier one, withdraws voluntary waitlisted and offered enrolments made from the earlier set for programmes the new set leaves out (`enrolment.withdrawn`, reason recommendation replaced)"),
        (E, "recommendation against take-up (`feed.recommendations.issued`)"),
    ],
    'hearth.assessments.v1.recommendations.withdrawn': [
        (D, "the set is no longer in force: withdraws voluntary waitlisted and offered enrolments made from it (`enrolment.withdrawn`, reason recommendation withdrawn), unless the consent withdrawal behind it already has (marked \"added to the agreed map\")"),
        (E, "stops counting the set as awaiting take-up"),
    ],
    'hearth.assessments.v1.plan.created': [
        (D, "which organisations are in the family's team, for the access rule (marked \"added to the agreed map\")"),
        (E, "family teams for access checks; plans by level and agency mix (`feed.plan.changed`)"),
    ],
    'hearth.assessments.v1.plan.team_changed': [
        (D, "follows the family's team for the access rule (marked \"added to the agreed map\")"),
        (E, "follows the family's team for access checks (`feed.plan.changed`)"),
    ],
    'hearth.assessments.v1.plan.reviewed': [
        (E, "review timeliness, family participation, goal progress (`feed.plan.changed`)"),
    ],
    'hearth.assessments.v1.plan.stepped_up': [
        (D, "the family's new level of need, for waitlist priority (marked \"added to the agreed map\")"),
        (E, "escalation and its reasons (`feed.plan.changed`)"),
    ],
    'hearth.assessments.v1.plan.stepped_down': [
        (D, "the family's new level of need, for waitlist priority (marked \"added to the agreed map\")"),
        (E, "families moved down the levels of support (`feed.plan.changed`)"),
    ],
    'hearth.assessments.v1.plan.closed': [
        (D, "the team's organisations lose access; when closed because the family withdrew or moved out of the area, withdraws its voluntary waitlisted and offered enrolments (`enrolment.withdrawn`, reason plan closed), otherwise leaves them for the coordinator"),
        (E, "outcome, final goal statuses, plan length (`feed.plan.changed`)"),
    ],
    # --- delivery ---
    'hearth.delivery.v1.programme.published': [
        (A, "its catalogue copy (levels, ages, needs, format, languages, evidence strength), for matching programmes"),
        (E, "programme names, formats, levels, completion rules, evidence, indicative costs"),
    ],
    'hearth.delivery.v1.programme.updated': [
        (A, "replaces its catalogue copy, for matching programmes"),
        (E, "programme names, formats, levels, completion rules, evidence, indicative costs"),
    ],
    'hearth.delivery.v1.programme.retired': [
        (A, "its catalogue copy: stops recommending the programme"),
        (E, "keeps the programme for the history of what was delivered"),
    ],
    'hearth.delivery.v1.venue.registered': [
        (A, "the venue's locality (or online), accessibility and crèche, for matching cohorts to a family"),
        (E, "localities, online venues (reach by locality)"),
    ],
    'hearth.delivery.v1.venue.updated': [
        (A, "the venue's current locality (or online), accessibility and crèche, for matching cohorts"),
        (E, "localities, online venues (reach by locality)"),
    ],
    'hearth.delivery.v1.practitioner.registered': [
        (E, "workforce reporting"),
    ],
    'hearth.delivery.v1.practitioner.updated': [
        (E, "workforce reporting (leavers)"),
    ],
    'hearth.delivery.v1.accreditation.recorded': [
        (E, "workforce reporting (`feed.accreditation.recorded`)"),
    ],
    'hearth.delivery.v1.accreditation.revoked': [
        (E, "workforce reporting: stops counting the accreditation as in force"),
    ],
    'hearth.delivery.v1.training.delivered': [
        (E, "workforce trained, training costs split across the programmes that accept the accreditation type (`feed.training.delivered`)"),
    ],
    'hearth.delivery.v1.cohort.planned': [
        (A, _COHORT_COPY),
        (E, "sessions, planned capacity (`feed.cohort.changed`)"),
    ],
    'hearth.delivery.v1.cohort.opened': [
        (A, _COHORT_COPY),
        (E, "sessions, what was offered (`feed.cohort.changed`)"),
    ],
    'hearth.delivery.v1.cohort.updated': [
        (A, _COHORT_COPY),
        (E, "sessions, planned costs, current facilitators and venue"),
    ],
    'hearth.delivery.v1.cohort.started': [
        (A, _COHORT_COPY),
        (E, "places participants in a period by their cohort's start (`feed.cohort.changed`)"),
    ],
    'hearth.delivery.v1.cohort.completed': [
        (A, _COHORT_COPY + " (drops it from matching)"),
        (E, "completion rate, cost per completer (`feed.cohort.changed`)"),
    ],
    'hearth.delivery.v1.cohort.cancelled': [
        (A, _COHORT_COPY + " (stops recommending it)"),
        (E, "cancelled capacity and its reasons, sessions held so far (`feed.cohort.changed`)"),
    ],
    'hearth.delivery.v1.cohort.costs_recorded': [
        (A, "its copy of cohorts (consumes `cohort.*`)"),
        (E, "actual costs, cost per completer"),
    ],
    'hearth.delivery.v1.session.created': [
        (A, _COHORT_COPY),
        (E, "sessions offered (for individual delivery the only record of a session before its register), practitioners delivering"),
    ],
    'hearth.delivery.v1.session.rescheduled': [
        (A, _COHORT_COPY),
        (E, "sessions offered, on their actual dates"),
    ],
    'hearth.delivery.v1.session.cancelled': [
        (A, _COHORT_COPY),
        (E, "stops counting it as a session offered"),
    ],
    'hearth.delivery.v1.attendance.recorded': [
        (E, "attendance and starts, facilitators delivering, Parenting Order sessions; a higher register revision replaces the earlier (`feed.attendance.recorded`)"),
    ],
    'hearth.delivery.v1.enrolment.offered': [
        (A, _PARTICIPATION + " (the offer)"),
        (E, "funnel, time to service (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.accepted': [
        (A, _PARTICIPATION + " (the offer accepted)"),
        (E, "funnel (offers accepted against declined), time from offer to answer (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.declined': [
        (A, _PARTICIPATION + " (the offer declined, so the plan no longer shows it as offered)"),
        (E, "funnel, barriers to access (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.waitlisted': [
        (A, _PARTICIPATION + " (back on, or onto, the waiting list)"),
        (E, "waits, waiting lists (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.enrolled': [
        (A, _PARTICIPATION + " (the confirmed place)"),
        (E, "funnel (\"enrolled\"), time from waitlist to enrolment (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.updated': [
        (E, "keyworkers among practitioners delivering, interpreters and crèche places in reach and cost figures, recommendations against take-up (`feed.enrolment.changed`, `ENROLMENT_CHANGE_UPDATED`)"),
    ],
    'hearth.delivery.v1.enrolment.completed': [
        (A, _PARTICIPATION),
        (E, "completion, cost per completer (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.dropped_out': [
        (A, _PARTICIPATION),
        (E, "drop-out reasons (`feed.enrolment.changed`)"),
    ],
    'hearth.delivery.v1.enrolment.withdrawn': [
        (A, "removes the place from the family plan's programme participation"),
        (E, "funnel and waiting lists: where families left, and why (`feed.enrolment.changed`, `ENROLMENT_CHANGE_WITHDRAWN`)"),
    ],
    'hearth.delivery.v1.order_notice.issued': [
        (E, "Parenting Order compliance (`feed.order_notice.issued`)"),
        (P, "the responsible officer's case system acts on it (named by the publisher)"),
    ],
    'hearth.delivery.v1.order_notice.acknowledged': [
        (E, "Parenting Order compliance report: what officers did about notices"),
    ],
    'hearth.delivery.v1.order_notice.withdrawn': [
        (E, "compliance: disregards the notice (`feed.order_notice.withdrawn`)"),
    ],
    'hearth.delivery.v1.pathway.activated': [
        (E, "every stop of the pathway with its title, in order, for the pathway report (including stops with no contacts yet)"),
    ],
    'hearth.delivery.v1.pathway.updated': [
        (E, "labels and orders the pathway report's stops by the revision in force"),
    ],
    'hearth.delivery.v1.pathway.retired': [
        (E, "keeps reporting the pathway's history; no contacts follow"),
    ],
    'hearth.delivery.v1.pathway_contact.recorded': [
        (E, "universal pathway reach (`feed.pathway_contact.recorded`)"),
    ],
    # --- evaluation ---
    'hearth.evaluation.v1.instrument.published': [
        (P, "those that render questionnaires (a provider's case system, an online form) put the current version to participants (named by the publisher)"),
    ],
    'hearth.evaluation.v1.instrument.retired': [
        (P, "those that render questionnaires stop offering it (named by the publisher)"),
    ],
    'hearth.evaluation.v1.measurement.recorded': [
        (A, _MEASURED),
    ],
    'hearth.evaluation.v1.measurement.corrected': [
        (A, _MEASURED + " (the scores replace those sent before)"),
    ],
    'hearth.evaluation.v1.measurement.voided': [
        (A, "removes the measurement from the family plan's measured change"),
    ],
    'hearth.evaluation.v1.feedback.recorded': [
        (P, "those with a data-sharing agreement (a provider's own case system) note that feedback was collected and how much may be quoted (named by the publisher)"),
    ],
}

# Notes shown in the event map for events no Hearth service consumes. Key: subject.
# Value: (note, whether it is an open point).
NOTES = {
    'hearth.evaluation.v1.instrument.published': ("partner systems only, as the publisher says: \"No Hearth service consumes it yet\"", False),
    'hearth.evaluation.v1.instrument.retired': ("partner systems only, as the publisher says", False),
    'hearth.evaluation.v1.feedback.recorded': ("partner systems only, as the publisher says: \"No Hearth service consumes it yet\"", False),
}

# Per-event documentation for the three services without code, in proto order.
# (subject, message, ce-subject, published when, personal data, why)
EVENTS = {
'assessments': [
 ('hearth.assessments.v1.framework.published', 'FrameworkPublished', 'the framework version',
  'PublishFrameworkVersion (area or platform admin)',
  'None beyond the publishing admin\'s user id. Carries the whole `FrameworkVersion` (domains, scale, levels, rules) and the framework\'s display name.',
  'Consumers label levels, tiers and domains by code (evaluation\'s outcome and reach figures, delivery\'s display of levels) without calling assessments.'),
 ('hearth.assessments.v1.framework.updated', 'FrameworkUpdated', 'the framework',
  'UpdateFramework (name, description or `area_default`); setting a new default also publishes one for the area\'s previous default, which it clears',
  'None. The framework\'s display name, whether it is the area\'s default, the fields changed.',
  'Evaluation labels levels and filters by the framework\'s current name, and knows which framework an area\'s new assessments use. Delivery needs nothing from it. Not in the original event map.'),
 ('hearth.assessments.v1.framework.retired', 'FrameworkRetired', 'the framework',
  'RetireFramework (final)',
  'None. The admin\'s reason is about the framework, never a family.',
  'Delivery refuses new programme placements at its levels (existing ones stay); evaluation marks it retired in labels and level filters, keeping its history. Not in the original event map.'),
 ('hearth.assessments.v1.assessment.queued', 'AssessmentQueued', 'the assessment',
  'automatically, from `hearth.referrals.v1.referral.accepted`, when the family has no open assessment (otherwise the referral is folded into the open one and appears in its `ref.additional_referrals`)',
  'Ids only (`AssessmentRef`), the assessment it will supersede, the acceptance time.',
  'Evaluation ties the accepted referral to its assessment from the start, measures time from acceptance to assessment and the wait between queueing and starting, and counts assessments waiting. Not in the original event map.'),
 ('hearth.assessments.v1.assessment.started', 'AssessmentStarted', 'the assessment',
  'StartAssessment or CreateAssessment (practitioner)',
  'Ids only (`AssessmentRef`), the consent basis (family consent or court order) and the consent relied on, `referrals/{r}/consents/{c}`.',
  'Time from acceptance to assessment and the funnel; the consent relied on is traceable.'),
 ('hearth.assessments.v1.assessment.completed', 'AssessmentCompleted', 'the assessment',
  'CompleteAssessment (assessor\'s practitioner)',
  'Member ids of the focus children and participants; presenting-need codes (can reveal health, domestic abuse, substance misuse or offending); flags; each domain\'s rating; suggested and decided levels; override reason code; family agreement; counts of views; parents\' goals as ids and domains. **No free text** (views, goals\' words, strengths and needs, analysis, override explanation).',
  'Delivery: the decided tier and court-ordered flag for waitlist priority. Evaluation: funnel, level mix, override rates and reasons, need profiles for reach and equity, baselines per domain and goal.'),
 ('hearth.assessments.v1.assessment.superseded', 'AssessmentSuperseded', 'the superseded assessment',
  'CompleteAssessment with `supersedes`, right after the later `assessment.completed`, same transaction',
  'Ids only.',
  'Consumers keep the family\'s current level from the latest completed assessment; the older ratings become history.'),
 ('hearth.assessments.v1.assessment.stopped', 'AssessmentStopped', 'the assessment',
  'StopAssessment, or automatically on ASSESSMENT consent withdrawal',
  'Ids and the coded stop reason only (no explanation).',
  'Evaluation\'s funnel tells a stopped assessment from an open one ("not assessed", by stop reason) for every referral it answered. No other Hearth service consumes it yet. Not in the original event map.'),
 ('hearth.assessments.v1.recommendations.issued', 'RecommendationsIssued', 'the recommendation set',
  'IssueRecommendations (practitioner, or the lead professional\'s organisation)',
  'Member ids of the adults each recommendation is for; the family\'s support preferences as codes (language, interpreter, times, locality, crèche, transport, formats). No note or explanation text.',
  'Delivery makes offers: which programme and cohort, for whom, in what order, and what the family needs to attend. Evaluation: recommendation against enrolment, reasons and gaps (unmet need).'),
 ('hearth.assessments.v1.recommendations.withdrawn', 'RecommendationsWithdrawn', 'the recommendation set',
  'automatically, when the family withdraws PROGRAMME_REFERRAL consent (not for a court-ordered family)',
  'Ids only, and the consent whose withdrawal caused it.',
  'Delivery withdraws the voluntary waitlist places and pending offers made from the set (whichever of this and `consent.withdrawn` it handles first does so); evaluation stops counting the set as awaiting take-up. Not in the original event map.'),
 ('hearth.assessments.v1.plan.created', 'PlanCreated', 'the plan',
  'CreateFamilyPlan',
  'Ids of the members involved; agencies as organisation id and type; goal ids and their domains. No names of the lead professional or agency contacts, no goal or action text.',
  'The team\'s organisations may now see the family\'s records in assessments, delivery and evaluation, which apply the same access rule (referrals does not consume plan events yet); delivery knows there is a lead professional; evaluation counts plans by level and agency mix.'),
 ('hearth.assessments.v1.plan.team_changed', 'PlanTeamChanged', 'the plan',
  'UpdateFamilyPlan when the lead professional or agencies change; also on SHARE_WITH_PARTNERS withdrawal (no agencies left)',
  'None beyond ids (organisations added and removed).',
  'Delivery and evaluation, like assessments, grant access to "organisations in the family\'s team" and must follow it. Not in the original event map.'),
 ('hearth.assessments.v1.plan.reviewed', 'PlanReviewed', 'the plan',
  'ReviewFamilyPlan',
  'Member ids of family members who attended; goal statuses. No summary or views text.',
  'Review timeliness, family participation, goal progress; overdue-review dashboards.'),
 ('hearth.assessments.v1.plan.stepped_up', 'PlanSteppedUp', 'the plan',
  'StepUpFamilyPlan',
  'Ids and codes only (levels, destination, reason).',
  'Delivery reprioritises waitlist places; evaluation tracks escalation and its reasons.'),
 ('hearth.assessments.v1.plan.stepped_down', 'PlanSteppedDown', 'the plan',
  'StepDownFamilyPlan',
  'Ids and codes only.',
  'Delivery reprioritises; evaluation tracks families moved down the levels of support.'),
 ('hearth.assessments.v1.plan.closed', 'PlanClosed', 'the plan',
  'CloseFamilyPlan',
  'Ids and codes only (closure reason, final level, each goal\'s final status, review count). No summary or views text.',
  'The team\'s organisations lose the access the plan gave them; delivery reviews pending offers and waitlist places; evaluation records outcome, goal statuses and plan length.'),
],
'delivery': [
 ('hearth.delivery.v1.programme.published', 'ProgrammePublished', 'the programme', 'PublishProgramme',
  'None. The whole `Programme`.', 'Assessments recommends from its own catalogue copy; evaluation labels and costs its figures.'),
 ('hearth.delivery.v1.programme.updated', 'ProgrammeUpdated', 'the programme', 'UpdateProgramme on a published programme',
  'None. The whole programme after the change and the `update_mask`.', 'Consumers replace their copy: assessments matches on current levels, ages, needs, format, languages and evidence; evaluation labels, applies completion rules and costs with current values.'),
 ('hearth.delivery.v1.programme.retired', 'ProgrammeRetired', 'the programme', 'RetireProgramme',
  'None. `reason` is free text about the programme, never a family.', 'Assessments stops recommending it; evaluation keeps it for the history of what was delivered.'),
 ('hearth.delivery.v1.venue.registered', 'VenueRegistered', 'the venue', 'CreateVenue',
  'None. The whole `Venue`.', 'Assessments matches cohorts to families by the venue\'s locality (or online), crèche and accessibility; evaluation reports reach by locality.'),
 ('hearth.delivery.v1.venue.updated', 'VenueUpdated', 'the venue', 'UpdateVenue (including making it inactive)',
  'None. The whole venue after the change.', 'Assessments\' matching and evaluation\'s reach use the current locality, crèche and accessibility.'),
 ('hearth.delivery.v1.practitioner.registered', 'PractitionerRegistered', 'the practitioner', 'CreatePractitioner',
  'Staff: practitioner id, organisation, role, languages, active flag. Not their name, email or login subject.', 'Evaluation\'s workforce reporting.'),
 ('hearth.delivery.v1.practitioner.updated', 'PractitionerUpdated', 'the practitioner', 'UpdatePractitioner (role, languages or active flag; name and email changes are not announced)',
  'Staff: as `practitioner.registered`.', 'Workforce reporting (leavers matter).'),
 ('hearth.delivery.v1.accreditation.recorded', 'AccreditationRecorded', 'the accreditation', 'RecordAccreditation; RecordTraining for each accreditation it awards',
  'Staff: practitioner id, accreditation type, award and expiry dates. No certificate number.', 'Evaluation\'s workforce reporting ("34 accredited in Sleep Scotland").'),
 ('hearth.delivery.v1.accreditation.revoked', 'AccreditationRevoked', 'the accreditation', 'RevokeAccreditation',
  'Staff: ids and the coded reason only.', 'Evaluation\'s workforce report counts only accreditations in force (and drops one recorded in error from "newly accredited").'),
 ('hearth.delivery.v1.training.delivered', 'TrainingDelivered', 'the training', 'RecordTraining',
  'Staff: trainees as practitioner ids, or organisation and role only, with outcomes; no names. Also title, provider (free text, an organisation), dates, contact time, cost.', 'Evaluation counts who was trained; its cost report splits the cost equally across the programmes that accept the accreditation type trained.'),
 ('hearth.delivery.v1.cohort.planned', 'CohortPlanned', 'the cohort', 'CreateCohort',
  'None (facilitators as practitioner ids). The whole `Cohort` and the sessions CreateCohort laid out.', 'Assessments may recommend it; evaluation counts planned capacity.'),
 ('hearth.delivery.v1.cohort.opened', 'CohortOpened', 'the cohort', 'OpenCohort',
  'None. The whole cohort with its pinned completion rule, and the schedule.', 'Assessments recommends it by locality (or online), times, language, crèche and places; evaluation counts what was offered.'),
 ('hearth.delivery.v1.cohort.updated', 'CohortUpdated', 'the cohort', 'UpdateCohort',
  'None. The whole cohort after the change and the `update_mask`.', 'Assessments\' cohort copy matches on the current venue, language, places and crèche; evaluation\'s workforce and reach figures follow the current facilitators and venue.'),
 ('hearth.delivery.v1.cohort.started', 'CohortStarted', 'the cohort', 'StartCohort, or the first register recorded',
  'None (a count of places taken).', 'Assessments may still recommend it until the programme\'s last joining session; evaluation places participants in a period by their cohort\'s start.'),
 ('hearth.delivery.v1.cohort.completed', 'CohortCompleted', 'the cohort', 'CompleteCohort, after the participants\' enrolment events, same transaction',
  'None: counts (enrolled, started, completed) and costs only.', 'Completion rate and cost per completer; assessments drops the cohort from matching.'),
 ('hearth.delivery.v1.cohort.cancelled', 'CohortCancelled', 'the cohort', 'CancelCohort (with an `enrolment.waitlisted` per participant, same transaction)',
  'None: coded reason and counts.', 'Assessments stops recommending it; evaluation counts cancelled capacity and its reasons, and the sessions held so far.'),
 ('hearth.delivery.v1.cohort.costs_recorded', 'CohortCostsRecorded', 'the cohort', 'RecordCohortCosts (any state)',
  'None.', 'Cost per completer.'),
 ('hearth.delivery.v1.session.created', 'SessionCreated', 'the session', 'CreateSession (an extra or booster session of a cohort, or an individual enrolment\'s session); sessions CreateCohort lays out travel in `cohort.planned` instead',
  'None beyond an individual session\'s enrolment id; facilitators as practitioner ids.', 'Evaluation counts sessions offered (for individual delivery the only record of a session before its register) and practitioners delivering; assessments keeps its copy of cohorts\' schedules current.'),
 ('hearth.delivery.v1.session.rescheduled', 'SessionRescheduled', 'the session', 'RescheduleSession',
  'None (an individual session\'s enrolment id at most).', 'Assessments keeps its copy of open cohorts\' schedules current; evaluation counts sessions offered on their actual dates.'),
 ('hearth.delivery.v1.session.cancelled', 'SessionCancelled', 'the session', 'CancelSession',
  'None (an individual session\'s enrolment id at most).', 'Evaluation stops counting it as a session offered (it no longer counts towards completion); assessments keeps its copy of cohorts\' schedules current.'),
 ('hearth.delivery.v1.attendance.recorded', 'AttendanceRecorded', 'the register, `.../sessions/{session}/register`', 'RecordAttendance (each recording or correction)',
  'Every mark: enrolment id, attendance status, minutes late, caught up. No notes. Counts of unregistered attendees and crèche children; the session\'s number; who delivered it (practitioner ids).', 'Evaluation computes starts, attendance rates and completion from the marks (a higher revision replaces the earlier register), and counts practitioners delivering from the facilitators.'),
 ('hearth.delivery.v1.enrolment.offered', 'EnrolmentOffered', 'the enrolment', 'CreateEnrolment (offer) or OfferEnrolment',
  '`EnrolmentRef` (family, participant and children member ids, referral, programme, cohort, court-ordered flag, keyworker); dates and counts.', 'Evaluation\'s funnel and time to service; assessments shows the offer in the family plan\'s programme participation.'),
 ('hearth.delivery.v1.enrolment.accepted', 'EnrolmentAccepted', 'the enrolment', 'AcceptEnrolment; ConfirmEnrolment on an offer; a register marking an offered participant attended or late (then `enrolment.enrolled`)',
  'Ids only.', 'Evaluation\'s funnel (offers accepted against declined) and time from offer to answer; assessments shows the accepted offer in the family plan\'s programme participation.'),
 ('hearth.delivery.v1.enrolment.declined', 'EnrolmentDeclined', 'the enrolment', 'DeclineEnrolment; CompleteCohort for offers still unanswered (`OFFER_DECLINE_REASON_NO_RESPONSE`, ended by `system`)',
  'Ids and the coded reason (`OfferDeclineReason`); the family\'s words stay in delivery.', 'Evaluation\'s funnel and barriers to access (times, travel, childcare, language); assessments shows the declined offer in the family plan\'s programme participation, so the plan no longer shows it as offered.'),
 ('hearth.delivery.v1.enrolment.waitlisted', 'EnrolmentWaitlisted', 'the enrolment', 'CreateEnrolment (waitlist), WaitlistEnrolment, CancelCohort, CompleteCohort',
  'Ids; cause; waitlist time and position; the level of need used for priority.', 'Evaluation\'s time to service and waiting lists; assessments shows the place as waitlisted in the family plan\'s programme participation.'),
 ('hearth.delivery.v1.enrolment.enrolled', 'EnrolmentEnrolled', 'the enrolment', 'CreateEnrolment (direct), ConfirmEnrolment, or a register marking an offered or accepted participant attended or late',
  'Ids only, and the completion rule. Enrolled (a confirmed place) is not started: the start is the first session attended, in `attendance.recorded`.', 'Evaluation\'s funnel ("enrolled") and time from waitlist to enrolment; assessments shows the place in the family plan\'s programme participation.'),
 ('hearth.delivery.v1.enrolment.updated', 'EnrolmentUpdated', 'the enrolment', 'UpdateEnrolment (keyworker, access arrangements, waitlist preferences or recommendation)',
  'Ids (the keyworker in `ref`), arrangement codes (crèche places, interpreter language, transport), the recommendation, the fields changed. No free text (the accessibility note stays) and no waitlist preferences (a change shows only in `update_mask`).', 'Evaluation counts keyworkers among practitioners delivering, interpreters and crèche places in reach and cost figures, and recommendations against take-up.'),
 ('hearth.delivery.v1.enrolment.completed', 'EnrolmentCompleted', 'the enrolment', 'CompleteEnrolment (individual) or CompleteCohort (group)',
  'Ids; attendance counts; whether the completion rule was overridden (not why).', 'Completion and cost per completer; assessments\' plan review and step down.'),
 ('hearth.delivery.v1.enrolment.dropped_out', 'EnrolmentDroppedOut', 'the enrolment', 'DropOutEnrolment, CompleteCohort (rule not met), or programme-referral consent withdrawn (after being enrolled, started or not)',
  'Ids; coded reason; attendance counts. The reason in words stays.', 'Drop-out analysis; assessments\' plan review.'),
 ('hearth.delivery.v1.enrolment.withdrawn', 'EnrolmentWithdrawn', 'the enrolment', 'WithdrawEnrolment; automatically when programme-referral consent is withdrawn, the plan closes, or the recommendation set is replaced or withdrawn; CompleteCohort for accepted participants never enrolled',
  'Ids; coded reason; the state it was withdrawn from (waitlisted, offered or accepted).', 'Evaluation\'s funnel and waiting-list figures (where families left, and why); assessments removes the place from the family plan\'s programme participation.'),
 ('hearth.delivery.v1.order_notice.issued', 'OrderNoticeIssued', 'the notice', 'for a court-ordered participant: a session marked absent (RecordAttendance), an offer declined (DeclineEnrolment, or unanswered when CompleteCohort runs), a drop-out (DropOutEnrolment, CompleteCohort), a withdrawal (WithdrawEnrolment, CompleteCohort), or a completion (CompleteEnrolment, CompleteCohort) (`OrderNoticeKind`)',
  'Participant member id under the Parenting Order; what happened; the session, start time and attendance status; attendance to date; responsible officer\'s service. No names, notes or reasons in words.', 'The responsible officer\'s case system must act on it; evaluation reports order compliance.'),
 ('hearth.delivery.v1.order_notice.acknowledged', 'OrderNoticeAcknowledged', 'the notice', 'AcknowledgeOrderNotice (responsible officer\'s organisation only)',
  'Ids and the coded action; the officer\'s note stays.', 'Evaluation\'s Parenting Order compliance report: what officers did about notices.'),
 ('hearth.delivery.v1.order_notice.withdrawn', 'OrderNoticeWithdrawn', 'the notice', 'RecordAttendance correcting an absence to attended or late, or a notice issued in error',
  'Ids and the coded reason only.', 'Consumers (the responsible officer\'s case system, evaluation\'s compliance figures) must disregard the notice.'),
 ('hearth.delivery.v1.pathway.activated', 'PathwayActivated', 'the pathway', 'ActivatePathway (a draft put into use; drafts are not announced)',
  'None. The whole `Pathway`: every stop with its id, number, title and window.', 'Evaluation\'s pathway report lists every stop with its title, in order, including stops with no contacts yet.'),
 ('hearth.delivery.v1.pathway.updated', 'PathwayUpdated', 'the pathway', 'UpdatePathway on an active pathway (a new revision; changes to a draft are not announced)',
  'None. The whole pathway after the change and the `update_mask`.', 'Evaluation labels and orders the pathway report\'s stops by the revision in force.'),
 ('hearth.delivery.v1.pathway.retired', 'PathwayRetired', 'the pathway', 'RetirePathway (final; its contacts are kept)',
  'None. The whole pathway as retired.', 'Evaluation keeps reporting the pathway\'s history with its stops and titles, and knows no contacts follow.'),
 ('hearth.delivery.v1.pathway_contact.recorded', 'PathwayContactRecorded', 'the pathway contact', 'RecordPathwayContact, or attendance at a session that delivers a pathway stop',
  'Child and adults-present member ids; stop, method, outcome, practitioner role, within window, further support identified, onward referral id. No note.', 'Pathway reach (who was seen, fathers included) and onward referral.'),
],
'evaluation': [
 ('hearth.evaluation.v1.instrument.published', 'InstrumentPublished', 'the instrument version', 'PublishInstrument; also when the service first loads the shipped instruments',
  'None. The whole `InstrumentVersion` (items, scales).', 'Partner systems that render questionnaires need the current version to put to participants; replaying the stream teaches every instrument. No Hearth service consumes it yet.'),
 ('hearth.evaluation.v1.instrument.retired', 'InstrumentRetired', 'the instrument', 'RetireInstrument',
  'None.', 'Partner systems that render questionnaires stop offering it.'),
 ('hearth.evaluation.v1.measurement.recorded', 'MeasurementRecorded', 'the measurement', 'CreateMeasurement',
  '`EvaluationRef` (family, participant, referral, enrolment, cohort, programme ids); instrument version, time point, date; total and subscale scores; change from baseline. Scores about parenting and wellbeing are sensitive. No item wording, goal text or free text.', 'Assessments shows the measured change per programme (goal and confidence progress) on the family plan for reviews and when stepping down. Consumers must hold scores under the family\'s consent and honour `consent.withdrawn`. No other Hearth service consumes it.'),
 ('hearth.evaluation.v1.measurement.corrected', 'MeasurementCorrected', 'the measurement', 'UpdateMeasurement; also for each later measurement whose change from baseline changed',
  'As `measurement.recorded`, with recomputed scores and the correction count. The correction reason (free text) is left out.', 'The scores replace those sent before (assessments, as `measurement.recorded`).'),
 ('hearth.evaluation.v1.measurement.voided', 'MeasurementVoided', 'the measurement', 'VoidMeasurement',
  'Ids only.', 'Assessments removes it from the family plan\'s measured change.'),
 ('hearth.evaluation.v1.feedback.recorded', 'FeedbackRecorded', 'the feedback', 'CreateFeedback',
  'Ids, the date and the quote consent only; the comment stays in evaluation.', 'Partner systems with a data-sharing agreement (a provider\'s own case system) can note that feedback was collected and how much may be quoted. No Hearth service consumes it yet.'),
],
}

# The analyst feed, in proto order.
# (entity.verb, message, built from, pseudonymous ids it carries, ce-subject)
_MAIN = 'the main entity\'s pseudonymous id'
_AREA = '`areas/{area}/feed`'
FEED = [
 ('epoch.started', 'FeedEpochStarted', 'operator: the area\'s first feed, key rotation, key compromise or rebuild', 'none (all ids empty)', _AREA),
 ('referral.received', 'FeedReferralReceived', '`hearth.referrals.v1.referral.received`', '`fam`, `ref`, `mem` (children and adults)', _MAIN),
 ('referral.placed', 'FeedReferralPlaced', 'the referral\'s postcode and reference data; sent again when a new reference data edition is activated (latest wins)', '`fam`, `ref`', _MAIN),
 ('member.profiled', 'FeedMemberProfiled', '`referral.received`, equality monitoring recorded or deleted, later referrals (latest wins)', '`fam`, `mem`, and `ref` when a referral triggered it', _MAIN),
 ('referral.contacted', 'FeedReferralContacted', 'the first successful `hearth.referrals.v1.contact.recorded`', '`fam`, `ref`', _MAIN),
 ('referral.decided', 'FeedReferralDecided', 'any of the five referral decision events', '`fam`, `ref`', _MAIN),
 ('assessment.completed', 'FeedAssessmentCompleted', '`hearth.assessments.v1.assessment.completed`', '`fam`, `ref` (and `ref` of each referral folded into the assessment, `additional_referrals`), `asm`', _MAIN),
 ('assessment.stopped', 'FeedAssessmentStopped', '`hearth.assessments.v1.assessment.stopped`', '`fam`, `ref` (and `ref` of each referral folded into the assessment, `additional_referrals`), `asm`', _MAIN),
 ('assessment.superseded', 'FeedAssessmentSuperseded', '`hearth.assessments.v1.assessment.superseded`', '`fam`, `ref`, `asm` (both assessments)', _MAIN),
 ('recommendations.issued', 'FeedRecommendationsIssued', '`hearth.assessments.v1.recommendations.issued`', '`fam`, `ref`, `asm`', _MAIN),
 ('plan.changed', 'FeedPlanChanged', 'assessments\' `plan.*` (created, reviewed, stepped up or down, team changed, closed)', '`fam`, `ref`, `pln`', _MAIN),
 ('cohort.changed', 'FeedCohortChanged', 'delivery\'s `cohort.planned`, `.opened`, `.started`, `.completed`, `.cancelled`', '`prc` (facilitators) only; not about a family', _AREA),
 ('enrolment.changed', 'FeedEnrolmentChanged', 'delivery\'s `enrolment.*` (offered, accepted, declined, waitlisted, enrolled, completed, dropped out, withdrawn, updated)', '`fam`, `ref`, `enr`, `mem`, `prc` (keyworker)', _MAIN),
 ('attendance.recorded', 'FeedAttendanceRecorded', '`hearth.delivery.v1.attendance.recorded`; only participants of families in the feed; a higher `revision` replaces the earlier', '`prc` (facilitators); per mark `enr`, `mem`, `fam`', _AREA + ' for a group session; the enrolment\'s `enr_…` id for an individual session'),
 ('order_notice.issued', 'FeedOrderNoticeIssued', '`hearth.delivery.v1.order_notice.issued` (any kind: missed session, declined offer, drop-out, withdrawal, completion)', '`fam`, `ref`, `enr`, `mem`, `ntc`', _MAIN),
 ('order_notice.withdrawn', 'FeedOrderNoticeWithdrawn', '`hearth.delivery.v1.order_notice.withdrawn`', 'as the notice, and `ntc`', _MAIN),
 ('measurement.recorded', 'FeedMeasurementRecorded', 'evaluation\'s own measurements; sent again with a higher `revision` when corrected (latest wins)', '`msr`; when identified also `fam`, `ref`, `mem`, `enr`; `msr` of the baseline', _MAIN),
 ('measurement.voided', 'FeedMeasurementVoided', 'evaluation\'s own records (VoidMeasurement)', '`msr`, and the ids as for the measurement', _MAIN),
 ('feedback.recorded', 'FeedFeedbackRecorded', 'evaluation\'s own records; the comment never travels', '`fbk`; when identified also `fam`, `ref`, `mem`, `enr`', _MAIN),
 ('quote.approved', 'FeedQuoteApproved', 'a quote the participant agreed to and a coordinator approved; deliberately unlinked (no pseudonymous id, cohort, or date finer than the quarter)', 'none (deliberately unlinked)', _AREA),
 ('quote.withdrawn', 'FeedQuoteWithdrawn', 'WithdrawQuoteConsent', 'none; names the quote, `quotes/{quote}`', _AREA),
 ('training.delivered', 'FeedTrainingDelivered', '`hearth.delivery.v1.training.delivered`', '`prc` (registered trainees)', _AREA),
 ('accreditation.recorded', 'FeedAccreditationRecorded', '`hearth.delivery.v1.accreditation.recorded`', '`prc`', _MAIN),
 ('pathway_contact.recorded', 'FeedPathwayContactRecorded', '`hearth.delivery.v1.pathway_contact.recorded`', '`fam`, `mem` (child and adults present), `ref` of any onward referral', _MAIN),
 ('family.withdrawn', 'FeedFamilyWithdrawn', 'evaluation consent withdrawn, retention period ended, or erasure', '`fam`, and every `mem` and `ref` of the family', _MAIN),
]
