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
