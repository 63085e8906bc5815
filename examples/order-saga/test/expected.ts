/** The scenario every saga test runs, and the summary it must produce on every broker (timings aside). */
export const ORDERS = 150;
export const SEED = 7;

export const EXPECTED_SUMMARY = {
  ok: true,
  seed: 7,
  orders: 150,
  confirmed: 115,
  cancelled: 30,
  cancelledByReason: { 'inventory-rejected': 15, 'payment-failed': 15 },
  deadLettered: 5,
  deadLettersByReason: { 'retries-exhausted': 5 },
  unsettled: 0,
  retries: 45,
  duplicatesSuppressed: 31,
  eventsPublished: 735,
  eventsPublishedTwice: 31,
  notificationsSent: 145,
  incidents: 0,
  invariants: {
    settled: { ok: true, detail: '150 orders: 145 terminal, 5 dead-lettered with a reason' },
    outcomes: { ok: true, detail: 'all 150 orders ended as the scenario predicts' },
    stock: {
      ok: true,
      detail:
        '7 SKUs: final = initial − 412 items of 115 confirmed orders − 14 items held for 5 dead-lettered orders (until replayed); never negative',
    },
    charges: {
      ok: true,
      detail: '115 charges: one for each of 115 confirmed orders, none for 30 cancelled and 5 dead-lettered',
    },
    audit: { ok: true, detail: '735 published events, each in the audit log exactly once' },
    notifications: { ok: true, detail: '145 customers notified once, each about a terminal order' },
  },
};

/** The scale scenario (issue 22): 10,000 orders, and the summary every transport must reach for it. */
export const SCALE_ORDERS = 10_000;

export const EXPECTED_SCALE_SUMMARY = {
  ok: true,
  seed: 7,
  orders: 10_000,
  confirmed: 7_700,
  cancelled: 2_000,
  cancelledByReason: { 'inventory-rejected': 1_000, 'payment-failed': 1_000 },
  deadLettered: 300,
  deadLettersByReason: { 'retries-exhausted': 300 },
  unsettled: 0,
  retries: 2_900,
  duplicatesSuppressed: 3_734,
  eventsPublished: 49_100,
  eventsPublishedTwice: 3_734,
  notificationsSent: 9_700,
  incidents: 0,
  invariants: {
    settled: { ok: true, detail: '10,000 orders: 9,700 terminal, 300 dead-lettered with a reason' },
    outcomes: { ok: true, detail: 'all 10,000 orders ended as the scenario predicts' },
    stock: {
      ok: true,
      detail:
        '7 SKUs: final = initial − 29,547 items of 7,700 confirmed orders − 874 items held for 300 dead-lettered orders (until replayed); never negative',
    },
    charges: {
      ok: true,
      detail: '7,700 charges: one for each of 7,700 confirmed orders, none for 2,000 cancelled and 300 dead-lettered',
    },
    audit: { ok: true, detail: '49,100 published events, each in the audit log exactly once' },
    notifications: { ok: true, detail: '9,700 customers notified once, each about a terminal order' },
  },
};
