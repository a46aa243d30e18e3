"""Tests of the Post Confirmation function against a running worker.

scripts/test runs them through the Swift suite (ProvisioningTests), which starts the stack and
sets PROVISIONING_URL, PROVISIONING_SECRET and TEST_USER_POOL_ID; run by hand, point those at
a local stack (scripts/run with PROVISIONING_SECRET set).
"""
import os
import unittest
import uuid

import lambda_function


def event(sub, username, email, pool=None):
    return {
        "version": "1", "region": "us-test-1", "userPoolId": pool or os.environ["TEST_USER_POOL_ID"],
        "userName": username, "triggerSource": "PostConfirmation_ConfirmSignUp",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client"},
        "request": {"userAttributes": {
            "sub": sub, "email": email, "email_verified": "true", "cognito:user_status": "CONFIRMED",
        }},
        "response": {},
    }


class PostConfirmationTests(unittest.TestCase):
    def test_the_event_goes_back_to_cognito_and_the_user_exists(self):
        sub = str(uuid.uuid4())
        sent = event(sub, "lambda-" + sub[:8], f"lambda-{sub[:8]}@example.com")
        self.assertEqual(lambda_function.lambda_handler(sent, None), sent)
        # Cognito may run the trigger again: the same user, nothing new.
        again = lambda_function.forward(sent, os.environ["PROVISIONING_URL"], os.environ["PROVISIONING_SECRET"].encode())
        self.assertEqual(again["username"], "lambda-" + sub[:8])
        self.assertEqual(again["email"], f"lambda-{sub[:8]}@example.com")

    def test_a_wrong_secret_is_refused(self):
        sent = event(str(uuid.uuid4()), "lambda-wrong", "lambda-wrong@example.com")
        with self.assertRaisesRegex(RuntimeError, r"refused the user \(401\)"):
            lambda_function.forward(sent, os.environ["PROVISIONING_URL"], b"not-the-secret-" * 3)

    def test_a_stale_signature_is_refused(self):
        sent = event(str(uuid.uuid4()), "lambda-stale", "lambda-stale@example.com")
        with self.assertRaisesRegex(RuntimeError, r"\(401\).*5 minutes"):
            lambda_function.forward(sent, os.environ["PROVISIONING_URL"], os.environ["PROVISIONING_SECRET"].encode(),
                                    now=lambda: 1_000_000_000)

    def test_an_event_from_another_pool_is_refused(self):
        sent = event(str(uuid.uuid4()), "lambda-pool", "lambda-pool@example.com", pool="us-test-1_Elsewhere")
        with self.assertRaisesRegex(RuntimeError, r"\(403\)"):
            lambda_function.lambda_handler(sent, None)

    def test_signatures_are_hmac_sha256_of_timestamp_and_body(self):
        self.assertEqual(
            lambda_function.sign(b"key", 1700000000, b"{}"),
            "sha256=" + __import__("hmac").new(b"key", b"1700000000.{}", "sha256").hexdigest())


if __name__ == "__main__":
    unittest.main()
