"""Use cases shared by every face (Slack, CLI, scheduler): no Slack or CLI imports here."""
