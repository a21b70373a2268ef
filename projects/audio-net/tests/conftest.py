from testkit import isolated, real_data, session_roots  # noqa: F401  (fixtures)
