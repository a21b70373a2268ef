from testkit import session_roots  # noqa: F401  (fixture: no test writes into the checkout)
