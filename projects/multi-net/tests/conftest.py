from testkit import isolated, real_data  # noqa: F401  (fixtures)
