"""Member service (회원관리): sign-up, login sessions, profile, points, withdrawal saga steps, activity read model."""
