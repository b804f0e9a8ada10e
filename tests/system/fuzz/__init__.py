"""System tests that prove the contract with generated requests: the schema fuzzer and the authorization matrix."""
