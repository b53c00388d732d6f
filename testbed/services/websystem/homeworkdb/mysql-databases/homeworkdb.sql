-- The homeworkdb database of the web system (the mysql-database module loads this
-- into a fresh database named homeworkdb): the application's records (owner: a user of usersdb).
-- As in the seeds, the database's user and password are its name.
CREATE USER IF NOT EXISTS 'homeworkdb'@'%' IDENTIFIED BY 'homeworkdb';
GRANT ALL PRIVILEGES ON `homeworkdb`.* TO 'homeworkdb'@'%';
CREATE TABLE records (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  owner VARCHAR(64) NOT NULL,
  body TEXT NOT NULL
) ENGINE=InnoDB;
