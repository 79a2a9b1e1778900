"""Decision makers: the policy interface, its registry and the policies themselves."""
