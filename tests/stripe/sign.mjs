// Signs a webhook payload the way Stripe does, with the official library's
// test helper (`stripe.webhooks.generateTestHeaderString`), for the payment
// tests. Input (environment): STRIPE_PAYLOAD (the exact body to send),
// STRIPE_SECRETS (one or more webhook secrets, comma-separated: several give
// several `v1` entries, as Stripe sends while a secret is being rolled),
// STRIPE_TIMESTAMP (seconds; default now). Output: one line,
// `header <Stripe-Signature value>`.
import Stripe from 'stripe';

const payload = process.env.STRIPE_PAYLOAD ?? '';
const secrets = (process.env.STRIPE_SECRETS ?? '').split(',').filter(Boolean);
const timestamp = process.env.STRIPE_TIMESTAMP ? Number(process.env.STRIPE_TIMESTAMP) : undefined;
if (!payload || secrets.length === 0) {
  console.error('STRIPE_PAYLOAD and STRIPE_SECRETS are required');
  process.exit(2);
}

const stripe = new Stripe('sk_test_signer_only_never_used');
// Each header is `t=<timestamp>,v1=<signature>`; several secrets, one `t`.
const headers = secrets.map((secret) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp }),
);
const t = headers[0].split(',')[0];
const signatures = headers.map((h) => h.split(',').slice(1).join(','));
console.log(`header ${[t, ...signatures].join(',')}`);
