"""Board service (게시판관리): boards, posts, comments and the CQRS post list."""
