-- depends:
DROP TABLE messages;
DROP TABLE tickets;
DROP TABLE users;
