"""`mathfirst study` and the skills analysis: the paper's claims over seeds, with intervals."""
