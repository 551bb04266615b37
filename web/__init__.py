"""Templates and static files of the web chat; installed as ``collab_qa.assets``."""
