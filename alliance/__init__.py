"""The loyalty domain: members, identifiers, consent, pairwise IDs, earn rules and more."""
