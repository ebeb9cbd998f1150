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
                       subjects=['hearth.evaluation.v1.measurement.>']),
}
FEED_STREAM = dict(stream='ANALYTICS', file='proto/hearth/evaluation/v1/feed.proto',
                   subjects=['hearth.evaluation.v1.feed.>'])

# Consumer actions. Key: subject. Value: list of (consumer, what it does).
# Consumers: as declared in the "What this service consumes" sections of the
# events.proto headers. Partner systems are listed only where the publisher names them.
R = 'referrals'
A = 'assessments'
D = 'delivery'
E = 'evaluation'
P = 'partner systems'

_PROVIDER_R = ("the access model: the organisation delivering the place (`ref.delivering_organisation`) "
               "may see the family's referrals while the place is live (waitlisted for a named "
               "cohort, offered, enrolled)")
_DECIDED = "funnel, time to decision (`feed.referral.decided`)"
_DROP_COPY = ("the referral will never be assessed: drops its copy of that referral's personal "
              "data, keeping only ids and the decision (family data still needed for another "
              "referral it holds is kept)")
_NO_ENROLMENT = ("the referral will never take an enrolment: CreateEnrolment refuses any later one "
                 "(`REFERRAL_NOT_ACCEPTED`), and delivery drops its copy of that referral's "
                 "personal data, keeping only ids and the decision (family data still needed "
                 "for another referral it holds is kept)")
_RULE = "facts of the one consent-in-force rule (docs/API.md, \"Consent in force\")"
_PARTICIPATION = ("the family plan's programme participation (`ref.state`, ACTIVE plans only: a "
                  "closed plan never changes) and the provider relationship "
                  "(`ref.delivering_organisation` while the place is live)")
_ENROLMENT_E = "funnel, waits, completion (`feed.enrolment.changed`); the provider relationship for access"
_TEAM = "the family's team for the access model"

CONSUMERS = {
    # --- referrals ---
    'hearth.referrals.v1.referral.received': [
        (A, "keeps the family's members (names, parenting roles, dates of birth or due dates), language and access needs, reasons, safeguarding flag and consents; drops contact details and free text"),
        (D, "keeps the people it needs for offers, registers and notices (adults' names, phones, emails, preferred contact methods; children's names and dates of birth; address, postcode, engagement note), access needs as enrolment defaults, and consents"),
        (E, "derives age bands, teenage parents, roles, referrer-reported ethnicity, language, access needs, postcode district, locality, deprivation and rurality, source, reasons, urgency and route; discards names, phones, emails, addresses, NHS numbers and free text on receipt. Feeds `feed.referral.received`, `feed.referral.placed`, `feed.member.profiled`"),
    ],
    'hearth.referrals.v1.referral.accepted': [
        (A, "creates the NOT_STARTED assessment, or folds the referral into the family's open assessment (`additional_referrals`)"),
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
        (A, _RULE + ": ASSESSMENT for the family, PROGRAMME_REFERRAL for each adult a recommendation names, SHARE_WITH_PARTNERS for agencies on the plan"),
        (D, _RULE + ": PROGRAMME_REFERRAL for each participant (a consent recorded after a signposting counts)"),
        (E, _RULE + ": EVALUATION, for who may be measured and who is in the feed"),
    ],
    'hearth.referrals.v1.consent.withdrawn': [
        (A, "re-applies the rule from the withdraw time: with no basis left, stops open assessments (`assessment.stopped`), withdraws the recommendation set, or narrows the plan's team (`plan.team_member_removed`)"),
        (D, "re-applies the rule for the adults the consent covered: places with no programme-referral basis left are withdrawn or dropped out (`enrolment.withdrawn`, `enrolment.dropped_out`, reason CONSENT_WITHDRAWN); recommendation sets with no participant left close"),
        (E, "re-applies the rule: the adult's measurements and comments leave reports from the withdraw time; with no EVALUATION consent left the family leaves the feed (`feed.family.withdrawn`)"),
    ],
    'hearth.referrals.v1.family.linked': [
        (A, "files the new referral under the family it already holds"),
        (D, "files the referral, and any enrolments made from it, under the family it already knows, so that `ALREADY_ENROLLED`, waitlist priority and access see one family"),
        (E, "repeat referrals; counts families once"),
    ],
    'hearth.referrals.v1.parenting_order.recorded': [
        (A, _RULE + " (the order stands in for ASSESSMENT and PROGRAMME_REFERRAL of the parents it binds); sets and clears the COURT_ORDERED flag"),
        (D, _RULE + "; makes the bound parents' places court-ordered (waitlist priority, compliance notices to the responsible officer's organisation while in force); a replacing order no longer binding a participant ends the court-ordered standing"),
        (E, "the orders and the parents they bind: the Parenting Order report's parents on orders (`feed.parenting_order.recorded`)"),
    ],
    'hearth.referrals.v1.family.corrected': [
        (A, "updates the names and dates of birth it holds (a due date become a date of birth changes age-keyed rules)"),
        (D, "updates the names, contact details and children's dates of birth it holds"),
        (E, "re-derives age bands and place from the corrected dates of birth and postcode (`feed.member.profiled`, `feed.referral.placed` again); discards identifiers"),
    ],
    # --- assessments ---
    'hearth.assessments.v1.framework.published': [
        (D, "checks programmes' level placements and takes each level's name and tier (a placement at a UNIVERSAL level makes a universal offer)"),
        (E, "levels, tiers and domains for labels and level filters"),
    ],
    'hearth.assessments.v1.assessment.completed': [
        (D, "the family's level of need, for waitlist priority"),
        (E, "the funnel's \"assessed\" for every referral the assessment answers, levels and tiers, time to assessment (`feed.assessment.completed`)"),
    ],
    'hearth.assessments.v1.assessment.stopped': [
        (E, "the funnel's \"not assessed\", by stop reason, for every referral the assessment answered (`feed.assessment.stopped`)"),
    ],
    'hearth.assessments.v1.recommendations.issued': [
        (D, "the hand-off: keeps the set OPEN in the coordinators' worklist (ListRecommendationSets), never an enrolment by itself; closes a set it replaces and withdraws places made from it for programmes the new set leaves out (`enrolment.withdrawn`, reason RECOMMENDATION_REPLACED)"),
    ],
    'hearth.assessments.v1.plan.team_member_added': [
        (R, "the access model: the organisation may now see the family's referrals"),
        (D, _TEAM + ": the organisation may now see the family's enrolments, registers and notices"),
        (E, _TEAM + ": the organisation may now see and record the family's measurements and feedback"),
    ],
    'hearth.assessments.v1.plan.team_member_removed': [
        (R, "the access model: the organisation loses sight of the family's referrals"),
        (D, _TEAM + ": the organisation loses that access"),
        (E, _TEAM + ": the organisation loses that access"),
    ],
    'hearth.assessments.v1.plan.stepped_up': [
        (D, "the family's new level of need, for waitlist priority"),
    ],
    'hearth.assessments.v1.plan.stepped_down': [
        (D, "the family's new level of need, for waitlist priority"),
    ],
    # --- delivery ---
    'hearth.delivery.v1.programme.published': [
        (A, "its catalogue copy (levels, ages, needs, format, languages, target groups, evidence strength), for matching programmes"),
        (E, "programme names, formats, levels, completion rules, indicative costs"),
    ],
    'hearth.delivery.v1.programme.updated': [
        (A, "replaces its catalogue copy, for matching programmes"),
        (E, "programme names, formats, levels, completion rules, indicative costs"),
    ],
    'hearth.delivery.v1.programme.retired': [
        (A, "its catalogue copy: stops recommending the programme"),
    ],
    'hearth.delivery.v1.accreditation.recorded': [
        (E, "workforce accredited (`feed.accreditation.recorded`)"),
    ],
    'hearth.delivery.v1.accreditation.revoked': [
        (E, "workforce accredited: stops counting the accreditation as in force (`feed.accreditation.revoked`)"),
    ],
    'hearth.delivery.v1.training.delivered': [
        (E, "workforce trained, training costs split across the programmes that accept the accreditation type (`feed.training.delivered`)"),
    ],
    'hearth.delivery.v1.cohort.completed': [
        (E, "what was delivered, completion, actual costs when already recorded (`feed.cohort.completed`)"),
    ],
    'hearth.delivery.v1.cohort.costs_recorded': [
        (E, "actual costs, cost per completer"),
    ],
    'hearth.delivery.v1.attendance.recorded': [
        (E, "attendance and starts, facilitators delivering, court-ordered attendance; a higher register revision replaces the earlier (`feed.attendance.recorded`)"),
    ],
    'hearth.delivery.v1.enrolment.offered': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, _ENROLMENT_E),
    ],
    'hearth.delivery.v1.enrolment.waitlisted': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, _ENROLMENT_E),
    ],
    'hearth.delivery.v1.enrolment.enrolled': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, _ENROLMENT_E),
    ],
    'hearth.delivery.v1.enrolment.declined': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, "funnel, barriers to access (`feed.enrolment.changed`); the provider relationship ends"),
    ],
    'hearth.delivery.v1.enrolment.updated': [
        (R, _PROVIDER_R),
        (A, "the provider relationship (a new keyworker may move the place to another delivering organisation); a place becoming or ceasing to be court-ordered"),
        (E, "the provider relationship for access (the delivering organisation after the change)"),
    ],
    'hearth.delivery.v1.enrolment.completed': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, "completion, cost per completer (`feed.enrolment.changed`); the provider relationship ends"),
    ],
    'hearth.delivery.v1.enrolment.dropped_out': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, "drop-out reasons (`feed.enrolment.changed`); the provider relationship ends"),
    ],
    'hearth.delivery.v1.enrolment.withdrawn': [
        (R, _PROVIDER_R),
        (A, _PARTICIPATION),
        (E, "funnel and waiting lists: where families left, and why (`feed.enrolment.changed`); the provider relationship ends"),
    ],
    'hearth.delivery.v1.order_notice.issued': [
        (E, "Parenting Order report: notices issued (`feed.order_notice.issued`)"),
        (P, "the responsible officer's case system acts on it (named by the publisher)"),
    ],
    'hearth.delivery.v1.order_notice.withdrawn': [
        (E, "Parenting Order report: disregards the notice (`feed.order_notice.withdrawn`)"),
        (P, "the responsible officer's case system disregards the notice (named by the publisher)"),
    ],
    # --- evaluation ---
    'hearth.evaluation.v1.measurement.recorded': [
        (P, "those with a data-sharing agreement (a provider's own case system) keep the scores beside their record of the family, under the participant's EVALUATION consent (named by the publisher)"),
    ],
    'hearth.evaluation.v1.measurement.corrected': [
        (P, "replace the scores they hold (named by the publisher)"),
    ],
    'hearth.evaluation.v1.measurement.voided': [
        (P, "discard the scores they hold (named by the publisher)"),
    ],
}

# Notes shown in the event map for events no Hearth service consumes. Key: subject.
# Value: (note, whether it is an open point).
NOTES = {
    'hearth.evaluation.v1.measurement.recorded': ("partner systems only, as the publisher says: \"No Hearth service consumes them\"", False),
    'hearth.evaluation.v1.measurement.corrected': ("partner systems only, as the publisher says", False),
    'hearth.evaluation.v1.measurement.voided': ("partner systems only, as the publisher says", False),
}

# Per-event documentation for the three services without code, in proto order.
# (subject, message, ce-subject, published when, personal data, why)
EVENTS = {
'assessments': [
 ('hearth.assessments.v1.framework.published', 'FrameworkPublished', 'the framework version',
  'CreateFramework (version 1) or CreateFrameworkVersion (area or platform admin); also when the service first loads the shipped frameworks',
  'None beyond the publishing admin\'s user id. Carries the whole `FrameworkVersion` (domains, scale, levels, rules) and the framework\'s display name.',
  'Delivery checks programmes\' level placements and takes each level\'s tier (a UNIVERSAL level makes a universal offer); evaluation labels levels and tiers and checks level filters, without calling assessments.'),
 ('hearth.assessments.v1.assessment.completed', 'AssessmentCompleted', 'the assessment',
  'CompleteAssessment (assessor\'s practitioner, or the area\'s coordinator)',
  'Member ids of the focus children and participants; presenting-need codes (can reveal health, domestic abuse, substance misuse or offending); flags; each domain\'s rating; suggested and decided levels; override reason code; family agreement; counts of views; parents\' goals as ids and domains. **No free text** (views, goals\' words, strengths and needs, analysis, override explanation).',
  'Delivery: the decided level for waitlist priority. Evaluation: the funnel\'s "assessed" for every referral the assessment answers (`ref.additional_referrals`), levels and tiers, time to assessment.'),
 ('hearth.assessments.v1.assessment.stopped', 'AssessmentStopped', 'the assessment',
  'StopAssessment, or automatically when the consent-in-force rule gives no ASSESSMENT basis any more (consent withdrawn, order expired or replaced)',
  'Ids and the coded stop reason only (no explanation).',
  'Evaluation\'s funnel tells a stopped assessment from an open one ("not assessed", by stop reason) for every referral it answered.'),
 ('hearth.assessments.v1.recommendations.issued', 'RecommendationsIssued', 'the recommendation set',
  'IssueRecommendations (practitioner of the assessor\'s or lead professional\'s organisation, or the area\'s coordinator)',
  'Member ids of the adults each recommendation is for; the family\'s support preferences as codes (language, interpreter, times, locality, crèche, transport, formats). No note or explanation text.',
  'The hand-off to delivery: the set becomes the coordinators\' worklist of recommendations waiting for an offer; the area\'s coordinator, or the provider running a cohort of a recommended programme, turns it into an offer. A set that replaces an earlier one closes it.'),
 ('hearth.assessments.v1.plan.team_member_added', 'PlanTeamMemberAdded', 'the plan',
  'CreateFamilyPlan (one per organisation: the lead professional\'s and each agency\'s), UpdateFamilyPlan (each organisation that joins)',
  'Ids only: the plan, family, receiving area, the organisation, its role (lead or agency) and agency type.',
  'The access model (issue 15): an organisation in the family\'s team may see the family\'s records in every service until its `plan.team_member_removed`.'),
 ('hearth.assessments.v1.plan.team_member_removed', 'PlanTeamMemberRemoved', 'the plan',
  'UpdateFamilyPlan (an agency removed, or the lead professional moved to another organisation), partner-sharing consent no longer in force (every agency but a responsible officer\'s), CloseFamilyPlan (every member)',
  'Ids only: as `plan.team_member_added`, with the reason it left.',
  'The access model: the organisation loses the access the team gave it, within seconds, in every service that granted it.'),
 ('hearth.assessments.v1.plan.stepped_up', 'PlanSteppedUp', 'the plan',
  'StepUpFamilyPlan',
  'Ids and codes only: levels before and after, destination, coded reason.',
  'Delivery takes the plan\'s new level as the family\'s level of need for waitlist priority.'),
 ('hearth.assessments.v1.plan.stepped_down', 'PlanSteppedDown', 'the plan',
  'StepDownFamilyPlan',
  'Ids and codes only: levels before and after, destination, coded reason.',
  'Delivery takes the plan\'s new level as the family\'s level of need for waitlist priority.'),
],
'delivery': [
 ('hearth.delivery.v1.programme.published', 'ProgrammePublished', 'the programme', 'PublishProgramme',
  'None. The whole `Programme`.', 'Assessments matches programmes from its own catalogue copy; evaluation labels, applies completion rules and costs.'),
 ('hearth.delivery.v1.programme.updated', 'ProgrammeUpdated', 'the programme', 'UpdateProgramme on a published programme',
  'None. The whole programme after the change and the `update_mask`.', 'Consumers replace their copy: assessments matches on current levels, ages, needs, format, languages and evidence; evaluation labels and costs with current values.'),
 ('hearth.delivery.v1.programme.retired', 'ProgrammeRetired', 'the programme', 'RetireProgramme',
  'None. The coordinator\'s reason is about the programme, never a family.', 'Assessments stops recommending it.'),
 ('hearth.delivery.v1.accreditation.recorded', 'AccreditationRecorded', 'the accreditation', 'RecordAccreditation, RecordTraining (for each accreditation it awards)',
  'Staff data only: practitioner id, organisation and role; type and dates. No certificate number.', 'Evaluation\'s workforce report: practitioners accredited (Midlothian, seed 000: "34 multi agency staff accredited in Sleep Scotland training").'),
 ('hearth.delivery.v1.accreditation.revoked', 'AccreditationRevoked', 'the accreditation', 'RevokeAccreditation',
  'Staff data only: ids and the coded reason.', 'Evaluation stops counting the accreditation as in force (and drops one recorded in error from newly accredited).'),
 ('hearth.delivery.v1.training.delivered', 'TrainingDelivered', 'the training', 'RecordTraining',
  'Staff data only: trainees as practitioner ids, or organisation and role; no names.', 'Evaluation\'s workforce report counts who was trained (Midlothian, seed 000: "113 multi agency staff trained in Solihull Approach"); its cost report splits the course\'s cost across the programmes that accept the accreditation type.'),
 ('hearth.delivery.v1.cohort.completed', 'CohortCompleted', 'the cohort', 'CompleteCohort (committed with each participant\'s enrolment event)',
  'None about families: the whole cohort (facilitators as practitioner ids), counts, costs if recorded.', 'Evaluation\'s completion figures, cost per completer, and `feed.cohort.completed`.'),
 ('hearth.delivery.v1.cohort.costs_recorded', 'CohortCostsRecorded', 'the cohort', 'RecordCohortCosts (any state, often weeks after completion)',
  'None.', 'Evaluation\'s cost per completer.'),
 ('hearth.delivery.v1.attendance.recorded', 'AttendanceRecorded', 'the register, `.../sessions/{session}/register`', 'RecordAttendance (each recording or correction)',
  'Every mark: enrolment id, attendance status, minutes late, caught up. No notes or names. Counts of unregistered attendees and crèche children; the session\'s number; who delivered it (practitioner ids).', 'Evaluation computes starts, attendance rates, completion and court-ordered attendance from the marks (a higher revision replaces the earlier register), and counts practitioners delivering.'),
 ('hearth.delivery.v1.enrolment.offered', 'EnrolmentOffered', 'the enrolment', 'CreateEnrolment (offer) or OfferEnrolment',
  '`EnrolmentRef` (family, participant and children member ids, referral, programme, cohort, delivering organisation, court-ordered flag, keyworker, state); the recommendation set; dates and counts.', 'Evaluation\'s funnel and time to service; assessments\' family plan; the provider relationship begins (access model).'),
 ('hearth.delivery.v1.enrolment.waitlisted', 'EnrolmentWaitlisted', 'the enrolment', 'CreateEnrolment (waitlist), WaitlistEnrolment, CancelCohort, CompleteCohort',
  'Ids; cause; waitlist time and position; the level of need used for priority.', 'Evaluation\'s time to service and waiting lists; assessments\' family plan; the provider relationship while waitlisted for a named cohort.'),
 ('hearth.delivery.v1.enrolment.enrolled', 'EnrolmentEnrolled', 'the enrolment', 'AcceptEnrolment, CreateEnrolment (direct), or a register marking an offered participant attended or late',
  'Ids only, and the completion rule. Enrolled (a confirmed place) is not started: the start is the first session attended, in `attendance.recorded`.', 'Evaluation\'s funnel ("enrolled") and time from waitlist to enrolment; assessments\' family plan; the provider relationship holds.'),
 ('hearth.delivery.v1.enrolment.declined', 'EnrolmentDeclined', 'the enrolment', 'DeclineEnrolment; CompleteCohort for offers still unanswered (`OFFER_DECLINE_REASON_NO_RESPONSE`, ended by `system`)',
  'Ids and the coded reason (`OfferDeclineReason`); the family\'s words stay in delivery.', 'Evaluation\'s funnel and barriers to access (times, travel, childcare, language); assessments\' family plan; the provider relationship ends.'),
 ('hearth.delivery.v1.enrolment.updated', 'EnrolmentUpdated', 'the enrolment', 'UpdateEnrolment (keyworker, access arrangements, waitlist preferences); the service, when `court_ordered` changes (an order recorded, expired or replaced)',
  'Ids (keyworker, delivering organisation, court-ordered flag in `ref`), arrangement codes (crèche places, interpreter language, transport), the fields changed. No free text and no waitlist preferences.', 'A new keyworker may move the place to another delivering organisation, which every service granting the provider relationship follows; assessments shows a place becoming court-ordered.'),
 ('hearth.delivery.v1.enrolment.completed', 'EnrolmentCompleted', 'the enrolment', 'CompleteEnrolment (individual) or CompleteCohort (group)',
  'Ids; attendance counts; whether the completion rule was overridden (not why).', 'Completion and cost per completer; assessments\' family plan; the provider relationship ends.'),
 ('hearth.delivery.v1.enrolment.dropped_out', 'EnrolmentDroppedOut', 'the enrolment', 'DropOutEnrolment, CompleteCohort (rule not met), or the service when no programme-referral basis remains (consent withdrawn; order ended)',
  'Ids; coded reason; attendance counts. The reason in words stays.', 'Drop-out analysis; assessments\' family plan; the provider relationship ends.'),
 ('hearth.delivery.v1.enrolment.withdrawn', 'EnrolmentWithdrawn', 'the enrolment', 'WithdrawEnrolment; the service when no programme-referral basis remains (consent withdrawn; order ended) or the recommendation set is replaced',
  'Ids; coded reason; the state it was withdrawn from (waitlisted or offered).', 'Evaluation\'s funnel and waiting-list figures (where families left, and why); assessments\' family plan (ACTIVE plans only); the provider relationship ends.'),
 ('hearth.delivery.v1.order_notice.issued', 'OrderNoticeIssued', 'the notice', 'for a court-ordered place while its order is in force: a session marked absent on or before the expiry date (RecordAttendance), an offer declined (DeclineEnrolment, or unanswered when CompleteCohort runs), a drop-out (DropOutEnrolment, CompleteCohort, the service), a withdrawal (WithdrawEnrolment, the service), or a completion (CompleteEnrolment, CompleteCohort) (`OrderNoticeKind`)',
  'Participant member id under the Parenting Order; what happened; the session, start time and attendance status; attendance to date; responsible officer\'s service. No names, notes or reasons in words.', 'The responsible officer\'s case system must act on it; evaluation reports order compliance.'),
 ('hearth.delivery.v1.order_notice.withdrawn', 'OrderNoticeWithdrawn', 'the notice', 'RecordAttendance correcting an absence to attended or late, or a notice issued in error',
  'Ids and the coded reason only.', 'Consumers (the responsible officer\'s case system, evaluation\'s compliance figures) must disregard the notice.'),
],
'evaluation': [
 ('hearth.evaluation.v1.measurement.recorded', 'MeasurementRecorded', 'the measurement', 'CreateMeasurement',
  '`EvaluationRef` (family, participant, referral, enrolment, cohort, programme ids); instrument version, time point, date; total and subscale scores; change from baseline. Scores about parenting and wellbeing are sensitive. No item wording, goal text or free text.', 'Partner systems with a data-sharing agreement (a provider\'s own case system) keep the scores beside their record of the family, under the participant\'s EVALUATION consent, honouring `consent.withdrawn`. No Hearth service consumes it.'),
 ('hearth.evaluation.v1.measurement.corrected', 'MeasurementCorrected', 'the measurement', 'UpdateMeasurement; also for each later measurement whose change from baseline changed',
  'As `measurement.recorded`, with recomputed scores and the correction count. The correction reason (free text) is left out.', 'The scores replace those sent before.'),
 ('hearth.evaluation.v1.measurement.voided', 'MeasurementVoided', 'the measurement', 'VoidMeasurement',
  'Ids only.', 'Holders discard the scores.'),
],
}

# The analyst feed, in proto order.
# (entity.verb, message, built from, pseudonymous ids it carries, ce-subject)
_MAIN = 'the main entity\'s pseudonymous id'
_AREA = '`areas/{receiving_area}/feed`'
FEED = [
 ('epoch.started', 'FeedEpochStarted', 'operator: the area\'s first feed, key rotation, key compromise or rebuild', 'none (all ids empty)', _AREA),
 ('referral.received', 'FeedReferralReceived', '`hearth.referrals.v1.referral.received`', '`fam`, `ref`, `mem` (children and adults)', _MAIN + ' (`ref`)'),
 ('referral.placed', 'FeedReferralPlaced', 'the referral\'s postcode and reference data; sent again when the postcode is corrected (`hearth.referrals.v1.family.corrected`) or a new reference data edition is activated (latest wins)', '`fam`, `ref`', _MAIN + ' (`ref`)'),
 ('member.profiled', 'FeedMemberProfiled', '`referral.received`, `family.corrected` and later referrals (latest wins)', '`fam`, `mem`, and `ref` when a referral triggered it', _MAIN + ' (`mem`)'),
 ('referral.contacted', 'FeedReferralContacted', 'the first successful `hearth.referrals.v1.contact.recorded`', '`fam`, `ref`', _MAIN + ' (`ref`)'),
 ('referral.decided', 'FeedReferralDecided', 'any of the five referral decision events', '`fam`, `ref`', _MAIN + ' (`ref`)'),
 ('parenting_order.recorded', 'FeedParentingOrderRecorded', '`hearth.referrals.v1.parenting_order.recorded` (at referral or later; latest per referral wins)', '`fam`, `ref`, `mem` (bound parents in the feed)', _MAIN + ' (`ref`)'),
 ('assessment.completed', 'FeedAssessmentCompleted', '`hearth.assessments.v1.assessment.completed`', '`fam`, `ref` (and `ref` of each referral folded into the assessment, `additional_referrals`), `asm`', _MAIN + ' (`asm`)'),
 ('assessment.stopped', 'FeedAssessmentStopped', '`hearth.assessments.v1.assessment.stopped`', '`fam`, `ref` (and `ref` of each referral folded into the assessment, `additional_referrals`), `asm`', _MAIN + ' (`asm`)'),
 ('cohort.completed', 'FeedCohortCompleted', 'delivery\'s `cohort.completed`', '`prc` (facilitators) only; not about a family', _AREA),
 ('enrolment.changed', 'FeedEnrolmentChanged', 'delivery\'s `enrolment.offered`, `.waitlisted`, `.enrolled`, `.declined`, `.completed`, `.dropped_out`, `.withdrawn`', '`fam`, `ref`, `enr`, `mem`, `prc` (keyworker)', _MAIN + ' (`enr`)'),
 ('attendance.recorded', 'FeedAttendanceRecorded', '`hearth.delivery.v1.attendance.recorded`; only participants in the feed; a higher `revision` replaces the earlier', '`prc` (facilitators); per mark `enr`, `mem`, `fam`', _AREA + ' for a group session; the enrolment\'s `enr_…` id for an individual session'),
 ('order_notice.issued', 'FeedOrderNoticeIssued', '`hearth.delivery.v1.order_notice.issued` (any kind: missed session, declined offer, drop-out, withdrawal, completion)', '`fam`, `ref`, `enr`, `mem`, `ntc`', _MAIN + ' (`ntc`)'),
 ('order_notice.withdrawn', 'FeedOrderNoticeWithdrawn', '`hearth.delivery.v1.order_notice.withdrawn`', 'as the notice, and `ntc`', _MAIN + ' (`ntc`)'),
 ('measurement.recorded', 'FeedMeasurementRecorded', 'evaluation\'s own measurements; sent again with a higher `revision` when corrected (latest wins)', '`msr`; when identified also `fam`, `ref`, `mem`, `enr`; `msr` of the baseline', _MAIN + ' (`msr`)'),
 ('measurement.voided', 'FeedMeasurementVoided', 'evaluation\'s own records (VoidMeasurement)', '`msr`, and the ids as for the measurement', _MAIN + ' (`msr`)'),
 ('feedback.recorded', 'FeedFeedbackRecorded', 'evaluation\'s own records; the comment never travels', '`fbk`; when identified also `fam`, `ref`, `mem`, `enr`', _MAIN + ' (`fbk`)'),
 ('training.delivered', 'FeedTrainingDelivered', '`hearth.delivery.v1.training.delivered`', '`prc` (registered trainees)', _AREA),
 ('accreditation.recorded', 'FeedAccreditationRecorded', '`hearth.delivery.v1.accreditation.recorded`', '`prc`', _MAIN + ' (`prc`)'),
 ('accreditation.revoked', 'FeedAccreditationRevoked', '`hearth.delivery.v1.accreditation.revoked`', '`prc`', _MAIN + ' (`prc`)'),
 ('family.withdrawn', 'FeedFamilyWithdrawn', 'no evaluation consent left for the family, retention period ended, or erasure', '`fam`, and every `mem` and `ref` of the family', _MAIN + ' (`fam`)'),
]
