"""What a team workspace adds: who did what (:mod:`jupyter_mlws.team.identity`)."""
